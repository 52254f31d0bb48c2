"""Exponential moving average of a model's parameters and buffers (the weights diffusion models sample with)."""

from __future__ import annotations

import torch
from torch import nn


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (the full state a sampling copy needs); DDP wrappers are looked through."""
    model = getattr(model, "module", model)
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


class EMA:
    """shadow <- decay * shadow + (1 - decay) * value for float tensors; other tensors (counters) are copied.

    With warmup, the decay after n updates is min(decay, (1 + n) / (10 + n)), as in latent-diffusion's LitEma
    (used by the official PVDM code), so the average is not dominated by the random init early in training.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1] (got {decay})")
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow = {name: t.detach().clone() for name, t in model_tensors(model).items()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for name, value in model_tensors(model).items():
            shadow = self.shadow[name]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - decay)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Write the averaged weights into `model` (e.g. a deep copy used for sampling) and return it."""
        for name, value in model_tensors(model).items():
            value.copy_(self.shadow[name])
        return model

    def state_dict(self) -> dict[str, object]:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": {k: v.clone() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            missing, extra = set(self.shadow) - set(shadow), set(shadow) - set(self.shadow)
            raise KeyError(
                f"EMA state does not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for k, v in shadow.items():
            self.shadow[k].copy_(v)
