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
from pvdm.diffusion.samplers import class_guided, get_sampler, guided
from pvdm.families.registry import TrainedDiffusion, check_pair, load_autoencoder, load_diffusion
from pvdm.families.roles import VideoAutoencoder, VideoDraw


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


def batch_starts(total: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """(first index, size) of each batch."""
    for start in range(0, total, batch_size):
        yield start, min(batch_size, total - start)


def _labels(labels: torch.Tensor | None, start: int, b: int, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else labels[start : start + b].to(device)


@torch.no_grad()
def sample_clips(
    model: VideoModel,
    n: int,
    cfg: SampleConfig,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """n clips (n, 3, S, H, W) in [-1, 1]; `labels` (n,) class ids for a class-conditional model, guided with
    `cfg.guidance` (None: unconditional)."""
    if model.diffusion.model.draws_videos:
        return _drawn_by_family(model, n, model.clip_frames, cfg, generator, labels)
    sampler, d = get_sampler(cfg.sampler), model.diffusion
    out = []
    for start, b in batch_starts(n, cfg.batch_size):
        denoiser = class_guided(d.model, _labels(labels, start, b, model.device), cfg.guidance)
        z0 = sampler(
            guided(denoiser, None),
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
    model: VideoModel,
    n: int,
    frames: int,
    cfg: SampleConfig,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """n videos of `frames` frames (n, 3, frames, H, W): ceil(frames / S) clips by Algorithm 1, then trimmed.
    `labels` (n,): each video's class, kept for all its clips (None: unconditional)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (got {frames})")
    if model.diffusion.model.draws_videos:
        return _drawn_by_family(model, n, frames, cfg, generator, labels)
    n_clips, d = math.ceil(frames / model.clip_frames), model.diffusion
    out = []
    for start, b in batch_starts(n, cfg.batch_size):
        long = generate_long_video(
            class_guided(d.model, _labels(labels, start, b, model.device), cfg.guidance),
            d.schedule,
            get_sampler(cfg.sampler),
            model.decode,
            n_clips,
            d.latent_spec.shape,
            batch_size=b,
            steps=cfg.steps,
            generator=generator,
            eta=cfg.eta,
            guidance_scale=cfg.clip_guidance,
            x0_bound=d.x0_bound,
        )
        out.append(long.video[:, :, :frames].cpu())
    return torch.cat(out)


def _drawn_by_family(
    model: VideoModel,
    n: int,
    frames: int,
    cfg: SampleConfig,
    generator: torch.Generator,
    labels: torch.Tensor | None,
) -> torch.Tensor:
    """Videos from a family that draws them itself (Denoiser.draws_videos: VIDM, frame by frame), decoded."""
    d, out = model.diffusion, []
    for start, b in batch_starts(n, cfg.batch_size):
        draw = VideoDraw(cfg.sampler, cfg.steps, cfg.eta, generator, _labels(labels, start, b, model.device),
                         cfg.guidance, d.x0_bound, progress=True)  # fmt: skip
        out.append(model.decode(d.model.draw_videos(b, frames, d.schedule, draw)).cpu())
    return torch.cat(out)


def draw_labels(model: VideoModel, n: int, seed: int) -> torch.Tensor | None:
    """n class ids drawn uniformly for a class-conditional model (seeded), None for an unconditional one."""
    classes = model.diffusion.model.num_classes
    if not classes:
        return None
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


def class_id(model: VideoModel, name_or_id: str) -> int:
    """A class given by name (as in the data's class folders) or by id; a clear error otherwise."""
    names, classes = model.diffusion.label_names, model.diffusion.model.num_classes
    if not classes:
        raise ValueError("this model is unconditional: it has no classes to choose from")
    if name_or_id in names:
        return names.index(name_or_id)
    if name_or_id.isdigit() and int(name_or_id) < classes:
        return int(name_or_id)
    raise ValueError(
        f"unknown class {name_or_id!r}: the model knows {', '.join(names) or f'ids 0-{classes - 1}'}"
    )


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """Samplers draw noise on the generator's device, so it lives where the model does."""
    return torch.Generator(device=device).manual_seed(seed)
