"""Long videos by clip-wise autoregression: PVDM Algorithm 1 (paper section 3.3).

Clip 1 is sampled with the null (zero) condition; clip l + 1 is conditioned on clip l's sampled clean latent
z_0^l. Each clip is decoded on its own and the clips are concatenated on the time axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from pvdm.diffusion.objective import DenoiserFn
from pvdm.diffusion.samplers import SampleFn, guided
from pvdm.diffusion.schedule import NoiseSchedule

Decoder = Callable[[torch.Tensor], torch.Tensor]  # (B, *latent) -> (B, 3, S, H, W)


class LongVideo(NamedTuple):
    video: torch.Tensor  # (B, 3, n_clips * S, H, W)
    latents: torch.Tensor  # (B, n_clips, *latent): each clip's sampled z_0


@torch.no_grad()
def generate_long_video(
    model: DenoiserFn,
    schedule: NoiseSchedule,
    sampler: SampleFn,
    decode: Decoder,
    n_clips: int,
    latent_shape: tuple[int, ...],
    *,
    batch_size: int,
    steps: int,
    generator: torch.Generator,
    eta: float = 0.0,
    guidance_scale: float = 1.0,
    x0_bound: float | None = None,
    progress: bool = False,
) -> LongVideo:
    """Algorithm 1: n_clips clips of S frames each, every clip after the first conditioned on the previous z_0.

    latent_shape: one latent without the batch axis (LatentSpec.shape); x0_bound: LatentSpec.bound or None.
    A class-conditional model comes wrapped with its labels (`class_guided`), the same for every clip."""
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1 (got {n_clips})")
    shape = (batch_size, *latent_shape)
    latents, clips = [], []
    prev: torch.Tensor | None = None  # None: the null condition for clip 1
    for _ in range(n_clips):
        model_fn = guided(model, prev, guidance_scale)
        z0 = sampler(
            model_fn,
            shape,
            schedule,
            steps=steps,
            generator=generator,
            eta=eta,
            x0_bound=x0_bound,
            progress=progress,
        )
        latents.append(z0)
        clips.append(decode(z0))  # (B, 3, S, H, W)
        prev = z0
    return LongVideo(video=torch.cat(clips, dim=2), latents=torch.stack(latents, dim=1))
