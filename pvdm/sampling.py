"""Drawing videos from a trained PVDM: 16-frame clips, and long videos of any length by Algorithm 1.

Everything here is inference: models in eval mode, no gradients, one seeded generator so a run is repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pvdm.config.sample import SampleConfig
from pvdm.diffusion.long_video import generate_long_video
from pvdm.diffusion.samplers import get_sampler, guided
from pvdm.models.autoencoder import TriplaneAutoencoder
from pvdm.training.autoencoder import autoencoder_from_checkpoint
from pvdm.training.checkpoint import load_checkpoint
from pvdm.training.diffusion import TrainedDiffusion, diffusion_from_checkpoint


@dataclass
class VideoModel:
    """A trained autoencoder and diffusion model, ready to sample on `device`."""

    autoencoder: TriplaneAutoencoder
    diffusion: TrainedDiffusion
    device: torch.device

    @classmethod
    def load(cls, autoencoder_path, diffusion_path, device: torch.device, use_ema: bool = True) -> VideoModel:
        ae = autoencoder_from_checkpoint(load_checkpoint(autoencoder_path)).to(device)
        diff = diffusion_from_checkpoint(load_checkpoint(diffusion_path), use_ema=use_ema)
        diff.model.to(device)
        if diff.latent_shape != ae.latent_shape:
            raise ValueError(
                f"{diffusion_path} was trained on latents {diff.latent_shape}, "
                f"but {autoencoder_path} produces {ae.latent_shape}: they come from different runs"
            )
        return cls(ae, diff, device)

    @property
    def clip_frames(self) -> int:
        return self.autoencoder.frames

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode_packed(z).clamp(-1, 1)


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
            (b, *d.latent_shape.packed_shape),
            d.schedule,
            steps=cfg.steps,
            generator=generator,
            eta=cfg.eta,
            clip_x0=d.config.process.clip_x0,
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
            d.latent_shape,
            batch_size=b,
            steps=cfg.steps,
            generator=generator,
            eta=cfg.eta,
            guidance_scale=cfg.guidance_scale,
            clip_x0=d.config.process.clip_x0,
        )
        out.append(long.video[:, :, :frames].cpu())
    return torch.cat(out)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """Samplers draw noise on the generator's device, so it lives where the model does."""
    return torch.Generator(device=device).manual_seed(seed)
