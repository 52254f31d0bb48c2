"""Drawing videos from a trained model family: clips, and long videos of any length by Algorithm 1.

Everything here is inference: models in eval mode, no gradients, one seeded generator so a run is repeatable.
Nothing here knows a family: latent shapes, bounds and decoders come from the LatentSpec and the two roles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from pvdm.checkpoint import load_checkpoint
from pvdm.config.sample import SampleConfig
from pvdm.diffusion.long_video import generate_long_video
from pvdm.diffusion.samplers import get_sampler, guided
from pvdm.families.registry import TrainedDiffusion, check_pair, load_autoencoder, load_diffusion
from pvdm.families.roles import VideoAutoencoder


@dataclass
class VideoModel:
    """A trained autoencoder and diffusion model of one family, ready to sample on `device`."""

    autoencoder: VideoAutoencoder
    diffusion: TrainedDiffusion
    device: torch.device

    @classmethod
    def load(
        cls,
        autoencoder_path: str | Path,
        diffusion_path: str | Path,
        device: torch.device,
        use_ema: bool = True,
    ) -> VideoModel:
        ae = load_autoencoder(load_checkpoint(autoencoder_path)).to(device)
        diff = load_diffusion(load_checkpoint(diffusion_path), use_ema=use_ema)
        diff.model.to(device)
        check_pair(ae, diff, (str(autoencoder_path), str(diffusion_path)))
        return cls(ae, diff, device)

    @property
    def clip_frames(self) -> int:
        return self.autoencoder.frames

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z).clamp(-1, 1)


def batch_sizes(total: int, batch_size: int) -> Iterator[int]:
    for start in range(0, total, batch_size):
        yield min(batch_size, total - start)


@torch.no_grad()
def sample_clips(model: VideoModel, n: int, cfg: SampleConfig, generator: torch.Generator) -> torch.Tensor:
    """n unconditional clips (n, 3, S, H, W) in [-1, 1]."""
    sampler, d = get_sampler(cfg.sampler), model.diffusion
    out = []
    for b in batch_sizes(n, cfg.batch_size):
        z0 = sampler(
            guided(d.model, None),
            (b, *d.latent_spec.shape),
            d.schedule,
            steps=cfg.steps,
            generator=generator,
            eta=cfg.eta,
            x0_bound=d.x0_bound,
        )
        out.append(model.decode(z0).cpu())
    return torch.cat(out)


@torch.no_grad()
def sample_long_videos(
    model: VideoModel, n: int, frames: int, cfg: SampleConfig, generator: torch.Generator
) -> torch.Tensor:
    """n videos of `frames` frames (n, 3, frames, H, W): ceil(frames / S) clips by Algorithm 1, then trimmed."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (got {frames})")
    n_clips, d = math.ceil(frames / model.clip_frames), model.diffusion
    out = []
    for b in batch_sizes(n, cfg.batch_size):
        long = generate_long_video(
            d.model,
            d.schedule,
            get_sampler(cfg.sampler),
            model.decode,
            n_clips,
            d.latent_spec.shape,
            batch_size=b,
            steps=cfg.steps,
            generator=generator,
            eta=cfg.eta,
            guidance_scale=cfg.guidance_scale,
            x0_bound=d.x0_bound,
        )
        out.append(long.video[:, :, :frames].cpu())
    return torch.cat(out)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """Samplers draw noise on the generator's device, so it lives where the model does."""
    return torch.Generator(device=device).manual_seed(seed)
