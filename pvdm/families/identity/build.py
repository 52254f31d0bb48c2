"""The identity folder's builders: what building or loading one of its models imports (pvdm.families.registry)."""

from __future__ import annotations

import torch

from pvdm.config.data import DataConfig
from pvdm.families.identity.config import IdentityAEConfig, pixel_spec
from pvdm.families.registry import register_autoencoder
from pvdm.families.roles import LatentSpec, VideoAutoencoder


class IdentityAutoencoder(VideoAutoencoder):
    trainable = False
    caches_latents = False

    def __init__(self, frames: int, resolution: int) -> None:
        super().__init__()
        self.frames, self.resolution = frames, resolution

    @property
    def latent_spec(self) -> LatentSpec:
        return pixel_spec(self.frames, self.resolution)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


def build_identity(cfg: IdentityAEConfig, data: DataConfig) -> IdentityAutoencoder:
    del cfg  # no settings
    return IdentityAutoencoder(data.frames, data.resolution)


register_autoencoder("identity", build_identity)
