"""One optimisation step of the diffusion model: a plain function, no Ray and no tracking inside."""

from __future__ import annotations

import torch
from torch import nn

from pvdm.config.diffusion import DiffusionTrainConfig
from pvdm.device import autocast
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.objective import TrainingBatch
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.families.roles import Denoiser
from pvdm.training.precision import clip_gradients


class TrainingObjective(nn.Module):
    """A denoiser's own training loss (Denoiser.training_loss) as a module's forward.

    Data parallelism (DDP) synchronises gradients of what runs inside the wrapped module's forward, and a family's
    loss may call several of its networks (VIDM: the content and the motion generator), so the training loop wraps
    this module, not the denoiser."""

    def __init__(self, denoiser: Denoiser, schedule: NoiseSchedule, cfg: DiffusionTrainConfig) -> None:
        super().__init__()
        self.denoiser, self.schedule, self.cfg = denoiser, schedule, cfg

    def forward(
        self, batch: TrainingBatch, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.denoiser.training_loss(batch, self.schedule, self.cfg, generator)


def _objective(model: nn.Module, schedule: NoiseSchedule, cfg: DiffusionTrainConfig) -> nn.Module:
    """`model` itself when it is a (possibly DDP-wrapped) TrainingObjective, else the denoiser's objective."""
    inner = getattr(model, "module", model)
    return model if isinstance(inner, TrainingObjective) else TrainingObjective(model, schedule, cfg)


def diffusion_train_step(
    model: nn.Module,
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    z: torch.Tensor,
    z_prev: torch.Tensor | None,
    schedule: NoiseSchedule,
    cfg: DiffusionTrainConfig,
    *,
    device: torch.device,
    precision: str,
    generator: torch.Generator,
    has_prev: torch.Tensor | None = None,
    label: torch.Tensor | None = None,
    update_ema: bool = True,
) -> dict[str, float]:
    """One step of the denoiser's training loss (PVDM's joint conditional / unconditional objective unless the
    family brings its own), then an EMA update.

    model: a Denoiser, or the TrainingObjective wrapping it (what the training loop hands to DDP).
    z: (B, *latent) clean latents of the clips to denoise; z_prev: the clean latents of the clips right before
    them, or None when no sample has one; has_prev: (B,) bool marking the samples whose z_prev is real (None: all);
    label: (B,) class ids for a class-conditional denoiser (None: unconditional).
    """
    objective = _objective(model, schedule, cfg)
    denoiser = getattr(objective, "module", objective).denoiser
    denoiser.train()
    batch = TrainingBatch(
        z.to(device),
        None if z_prev is None else z_prev.to(device),
        has_prev,
        None if label is None else label.to(device),
    )
    with autocast(device, precision):
        loss, stats = objective(batch, generator)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"diffusion loss is {loss.item()}: the optimizer step was not taken")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_gradients(denoiser.parameters(), cfg.grad_clip)
    optimizer.step()
    if update_ema:  # every `ema_every` steps, as the official code averages
        ema.update(denoiser)
    return {"loss": loss.item(), "grad_norm": grad_norm} | stats
