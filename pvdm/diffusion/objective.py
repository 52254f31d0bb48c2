"""The training objective: eps-prediction MSE with PVDM's joint conditional / unconditional condition.

Paper section 3.3: one network learns p(z) and p(z^2 | z^1) together,
    E[ lambda * ||eps - eps_theta(z_t^2, z_0^1, t)||^2 + (1 - lambda) * ||eps - eps_theta(z_t^2, 0, t)||^2 ],
estimated here per sample: with probability lambda (cond_prob) a sample is conditioned on its previous clip's
clean latent, otherwise on the null (all-zero) condition. A sample with no previous clip always gets the null one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from pvdm.diffusion.schedule import NoiseSchedule

# eps_theta(z_t, t, cond, label=None): (B, ...), (B,), (B, ...) | None, (B,) | None -> (B, ...)
DenoiserFn = Callable[..., torch.Tensor]


def denoise(
    model: DenoiserFn, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, label: torch.Tensor | None
) -> torch.Tensor:
    """eps_theta(x, t, cond[, label]): the label is passed only when there is one (unconditional callables
    may take three arguments)."""
    return model(x, t, cond) if label is None else model(x, t, cond, label)


def q_sample(z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Draw z_t ~ q(z_t | z_0) = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4)."""
    abar = schedule.abar_at(t, z0)
    return abar.sqrt() * z0 + (1 - abar).sqrt() * noise


def draw(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise from `generator` (drawn on its device, so a CPU generator can seed CUDA runs)."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def choose_conditions(
    z_prev: torch.Tensor | None,
    has_prev: torch.Tensor | None,
    batch: int,
    cond_prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Per-sample condition: z_prev with probability cond_prob where a previous clip exists, else zeros.

    Returns (cond (B, ...) or None when no sample is conditioned, use_prev (B,) bool).
    """
    coin = torch.rand(batch, generator=generator, device=generator.device) < cond_prob
    if z_prev is None:
        return None, torch.zeros(batch, dtype=torch.bool)
    use_prev = coin.cpu() if has_prev is None else coin.cpu() & has_prev.bool().cpu()
    mask = use_prev.to(z_prev.device, z_prev.dtype).reshape(-1, *([1] * (z_prev.ndim - 1)))
    return z_prev * mask, use_prev


def drop_labels(label: torch.Tensor | None, p: float, generator: torch.Generator) -> torch.Tensor | None:
    """Classifier-free guidance training (Ho & Salimans 2022): each label becomes the null class (-1) with
    probability p, so one model learns the conditional and the unconditional denoiser."""
    if label is None:
        return None
    drop = (torch.rand(label.shape[0], generator=generator, device=generator.device) < p).to(label.device)
    return torch.where(drop, torch.full_like(label, -1), label)


def eps_loss(
    model: DenoiserFn,
    z0: torch.Tensor,
    cond: torch.Tensor | None,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    label: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ho et al. 2020, Alg. 1 (L_simple): t ~ U{0..T-1}, eps ~ N(0, I), MSE(eps, eps_theta(z_t, t, cond, label))."""
    z_t, t, noise = noised(z0, schedule, generator)
    pred = denoise(model, z_t, t, cond, label)
    return F.mse_loss(pred.float(), noise.float())


def noised(
    x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training draw: t ~ U{0..T-1} per sample and eps ~ N(0, I); returns (x_t, t, eps)."""
    t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator, device=generator.device)
    t = t.to(x0.device)
    noise = draw(tuple(x0.shape), generator, x0.device, x0.dtype)
    return q_sample(x0, t, noise, schedule), t, noise


@dataclass
class TrainingBatch:
    """What one diffusion training step sees, as the latent store gives it.

    z (B, *spec.shape): clean latents to denoise; z_prev: the clean latents of the clips right before them (None
    when no sample has one); has_prev (B,) bool: which z_prev are real (None: all); label (B,) long class ids for a
    class-conditional denoiser (None: unconditional).
    """

    z: torch.Tensor
    z_prev: torch.Tensor | None = None
    has_prev: torch.Tensor | None = None
    label: torch.Tensor | None = None


class ObjectiveConfig(Protocol):
    """The training settings an objective reads (DiffusionTrainConfig has them)."""

    cond_prob: float
    label_drop_prob: float


def joint_eps_objective(
    model: DenoiserFn,
    batch: TrainingBatch,
    schedule: NoiseSchedule,
    cfg: ObjectiveConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PVDM's objective (section 3.3) with classifier-free label dropout: each sample conditioned on its previous
    clip with probability cond_prob, its label dropped with probability label_drop_prob, then L_simple.
    Returns (loss, numbers to log); cond_fraction is the share of the batch that was conditioned."""
    cond, use_prev = choose_conditions(
        batch.z_prev, batch.has_prev, batch.z.shape[0], cfg.cond_prob, generator
    )
    label = drop_labels(batch.label, cfg.label_drop_prob, generator)
    loss = eps_loss(model, batch.z, cond, schedule, generator, label=label)
    return loss, {"cond_fraction": use_prev.float().mean().item()}
