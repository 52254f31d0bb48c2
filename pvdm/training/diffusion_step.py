"""One optimisation step of the latent diffusion model: a plain function, no Ray and no tracking inside."""

from __future__ import annotations

import torch
from torch import nn

from pvdm.config.diffusion import DiffusionTrainConfig
from pvdm.device import autocast
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.objective import choose_conditions, drop_labels, eps_loss
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.training.precision import clip_gradients


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
    """Eps-prediction step with PVDM's joint conditional / unconditional objective, then an EMA update.

    z: (B, *latent) clean latents of the clips to denoise; z_prev: the clean latents of the clips right before
    them, or None when no sample has one; has_prev: (B,) bool marking the samples whose z_prev is real (None: all);
    label: (B,) class ids for a class-conditional denoiser (None: unconditional).
    cond_fraction is the share of the batch that was conditioned (about cond_prob when every sample has a z_prev).
    """
    model.train()
    z = z.to(device)
    z_prev = None if z_prev is None else z_prev.to(device)
    cond, use_prev = choose_conditions(z_prev, has_prev, z.shape[0], cfg.cond_prob, generator)
    label = drop_labels(label, cfg.label_drop_prob, generator)
    with autocast(device, precision):
        loss = eps_loss(model, z, cond, schedule, generator, label=label)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"diffusion loss is {loss.item()}: the optimizer step was not taken")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_gradients(model.parameters(), cfg.grad_clip)
    optimizer.step()
    if update_ema:  # every `ema_every` steps, as the official code averages
        ema.update(model)
    return {"loss": loss.item(), "grad_norm": grad_norm, "cond_fraction": use_prev.float().mean().item()}
