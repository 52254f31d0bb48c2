"""Noise schedules: the fixed forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

Timesteps are 0-based: t = 0 is the first noising step (Ho et al.'s t = 1), t = T - 1 the last.

"linear" follows the official PVDM code, which inherits latent-diffusion's make_beta_schedule: betas are linear
in sqrt(beta), betas = linspace(sqrt(start), sqrt(end), T) ** 2 (improved-diffusion and Ho et al. use a schedule
linear in beta itself; LDM calls that one "sqrt_linear"). We keep PVDM's so its published hyperparameters
(0.0015 -> 0.0195) mean what they meant when the paper's models were trained. The endpoints are the same either
way; in between, the squared form has smaller betas, so abar decays more slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pvdm.config.diffusion import ProcessConfig


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """LDM / PVDM "linear": linear in sqrt(beta). (T,) float64."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t) / f(0), f(t) = cos(((t / T + s) / (1 + s)) * pi / 2) ** 2.

    betas = 1 - abar(t + 1) / abar(t), clipped at max_beta to avoid the singularity at t = T. (T,) float64.
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


@dataclass(frozen=True)
class NoiseSchedule:
    """betas (T,) and their cumulative products, float64 on the CPU; index with 0-based timesteps.

    convention: how the samplers walk it (ProcessConfig.convention): "pvdm", or "official" (the official PVDM
    sampler's timesteps and DDIM eps, pvdm.diffusion.samplers)."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    convention: str = "pvdm"

    @classmethod
    def from_betas(cls, betas: torch.Tensor, convention: str = "pvdm") -> NoiseSchedule:
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D tensor with every value in (0, 1)")
        return cls(betas=betas, alphas_cumprod=torch.cumprod(1 - betas, dim=0), convention=convention)

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    def abar(self, t: int) -> float:
        """alphas_cumprod at one timestep; t = -1 means 'no noise' (abar = 1), the end of every sampling chain."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def abar_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alphas_cumprod at per-sample timesteps t (B,), shaped (B, 1, ...) to broadcast against `like`."""
        a = self.alphas_cumprod.to(t.device)[t.long()].to(like.dtype)
        return a.reshape(-1, *([1] * (like.ndim - 1)))


def make_schedule(cfg: ProcessConfig) -> NoiseSchedule:
    if cfg.schedule == "linear":
        betas = linear_betas(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    elif cfg.schedule == "ddpm_linear":
        betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.timesteps, dtype=torch.float64)
    else:
        betas = cosine_betas(cfg.timesteps)
    return NoiseSchedule.from_betas(betas, cfg.convention)
