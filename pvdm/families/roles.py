"""The two roles of a model family. Read this first: every stage talks to models through these and nothing else.

A model family (PVDM, 3D-VQGAN + VDM, VIDM, pixel VDM, ...) is a video autoencoder and a denoiser:

    video (B, 3, T, H, W) in [-1, 1] --autoencoder.encode--> latent (B, *spec.shape)
    latent --the diffusion process, with denoiser(z_t, t, cond, label) -> eps--> sampled latent
    sampled latent --autoencoder.decode--> video

`LatentSpec` says what the latents are (shape, bound, prior); it travels with the latent store and with every
diffusion checkpoint, so samplers, long videos and evaluation never assume one family's latents. It lives in
pvdm.families.latent_spec (no torch there: params validation reads it) and is re-exported here. A family is
registered in pvdm.families.registry (builder + config section); see docs/architecture.md, "How to add a family".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pvdm.diffusion.objective import ObjectiveConfig, TrainingBatch, joint_eps_objective
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.families.latent_spec import LatentSpec

__all__ = ["Denoiser", "LatentSpec", "VideoAutoencoder", "VideoDraw"]


@dataclass(frozen=True)
class VideoDraw:
    """How a family that draws whole videos samples them (pvdm.sampling builds it from the sample section)."""

    sampler: str  # 'ddpm' | 'ddim'
    steps: int
    eta: float
    generator: torch.Generator
    label: torch.Tensor | None = None  # (n,) class ids, None: unconditional
    guidance: float = 1.0  # classifier-free guidance scale on the label
    x0_bound: float | None = 1.0  # predicted x_0 clipped to it (the latents' bound), None: no clip
    progress: bool = False


class VideoAutoencoder(nn.Module, ABC):
    """Role 1: maps clips (B, 3, frames, resolution, resolution) in [-1, 1] to latents and back.

    `trainable` False (the identity) means the train_autoencoder stage has nothing to fit; `caches_latents` False
    means the latent store points at the clip store instead of copying the data (latent = the clip).
    """

    frames: int
    resolution: int
    trainable: bool = True
    caches_latents: bool = True

    @property
    @abstractmethod
    def latent_spec(self) -> LatentSpec: ...

    @abstractmethod
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, *latent_spec.shape)."""

    @abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, *latent_spec.shape) -> (B, 3, T, H, W), about [-1, 1] (callers clamp)."""

    def forward(self, video: torch.Tensor, with_losses: bool = False):
        """The reconstruction; with_losses: reconstruct_for_training's triple, for training."""
        return self.reconstruct_for_training(video) if with_losses else self.decode(self.encode(video))

    def reconstruct_for_training(
        self, video: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        """(reconstruction, the family's own loss terms already weighted (e.g. a VQ commitment loss), numbers to
        log (e.g. codebook perplexity)).

        The shared objective (pixel + perceptual + GAN, pvdm.training.autoencoder_loss) is added by the trainer;
        a family with extra terms or statistics overrides this."""
        return self.decode(self.encode(video)), {}, {}


class Denoiser(nn.Module, ABC):
    """Role 2: the network the diffusion process trains and samples: eps_theta(z_t, t, cond, label).

    z_t (B, *spec.shape); t (B,) integer timesteps; cond (B, *spec.shape) or None: a clean latent to condition on
    (PVDM's previous clip), None = the null condition; label (B,) long or None: class ids in [0, num_classes),
    None = the null class. Returns eps with z_t's shape.

    Two optional hooks let a family own more than the network (VIDM does both; PVDM and VDM use the defaults):
    `training_loss` (default: PVDM's joint objective on clip latents) and, with `draws_videos`, `draw_videos`
    (default: the shared samplers and Algorithm 1 draw one latent of spec.shape per clip).
    """

    num_classes: int = 0
    # True: the family draws videos of any length itself (VIDM: frame by frame); sampling calls draw_videos.
    draws_videos: bool = False

    def training_loss(
        self,
        batch: TrainingBatch,
        schedule: NoiseSchedule,
        cfg: ObjectiveConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(the loss to minimise, numbers to log) for one batch of the latent store."""
        return joint_eps_objective(self, batch, schedule, cfg, generator)

    def prepare_training(self, root: Path) -> None:
        """Called once before training from scratch (not on resume, not when a checkpoint is loaded): the place to
        load pretrained parts a config names (VIDM's flow network), by paths relative to the project `root`."""

    def draw_videos(
        self,
        n: int,
        frames: int,
        schedule: NoiseSchedule,
        draw: VideoDraw,
    ) -> torch.Tensor:
        """n latents of `frames` frames (n, C, frames, ...), for families with draws_videos."""
        raise NotImplementedError(f"{type(self).__name__} does not draw whole videos (draws_videos is False)")

    @property
    @abstractmethod
    def latent_spec(self) -> LatentSpec: ...

    @abstractmethod
    def forward(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor: ...
