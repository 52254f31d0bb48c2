"""The identity autoencoder: latent = the clip itself. The pixel-space families (pixel VDM, VIDM) use it.

Nothing to train, and nothing to cache: the latent store of an identity family points at the clip store.
"""

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
