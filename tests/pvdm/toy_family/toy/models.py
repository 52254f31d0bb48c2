"""The toy family's networks: an autoencoder and a denoiser of a few layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pvdm.config.data import DataConfig
from pvdm.families.roles import Denoiser, LatentSpec, VideoAutoencoder
from pvdm.models.unet import timestep_embedding

from .config import ToyAEConfig, ToyDenoiserConfig


class ToyAutoencoder(VideoAutoencoder):
    """Halves height and width with one strided 3D conv."""

    def __init__(self, cfg: ToyAEConfig, data: DataConfig) -> None:
        super().__init__()
        self.cfg, self.frames, self.resolution = cfg, data.frames, data.resolution
        self.enc = nn.Conv3d(3, cfg.channels, (1, 2, 2), stride=(1, 2, 2))
        self.dec = nn.ConvTranspose3d(cfg.channels, 3, (1, 2, 2), stride=(1, 2, 2))

    @property
    def latent_spec(self) -> LatentSpec:
        return self.cfg.latent_spec(DataConfig(resolution=self.resolution, frames=self.frames))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.enc(video)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.dec(latent)


class ToyDenoiser(Denoiser):
    """Two 3D convs over [z_t, cond] with a time embedding added in between."""

    def __init__(self, cfg: ToyDenoiserConfig, spec: LatentSpec) -> None:
        super().__init__()
        self.spec, c, w = spec, spec.shape[0], cfg.width
        self.inp = nn.Conv3d(2 * c, w, 3, padding=1)
        self.time = nn.Linear(w, w)
        self.out = nn.Conv3d(w, c, 3, padding=1)

    @property
    def latent_spec(self) -> LatentSpec:
        return self.spec

    def forward(self, z_t, t, cond=None, label=None):  # noqa: ANN001 - the Denoiser signature
        cond = torch.zeros_like(z_t) if cond is None else cond
        h = self.inp(torch.cat([z_t, cond], dim=1))
        h = h + self.time(timestep_embedding(t, h.shape[1]))[:, :, None, None, None]
        return self.out(F.silu(h))
