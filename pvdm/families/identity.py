"""The identity autoencoder: latent = the clip itself. Pixel-space families (VDM, VIDM) use it.

Nothing to train, and nothing to cache: the latent store of an identity family points at the clip store.
"""

from __future__ import annotations

import torch

from pvdm.config.autoencoder import IdentityAEConfig
from pvdm.config.data import DataConfig
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
        # Pixels in [-1, 1]; a prior sample is uniform noise video (the noise baseline of pixel families).
        shape = (3, self.frames, self.resolution, self.resolution)
        return LatentSpec(shape=shape, bound=1.0, prior="uniform", dtype="uint8", layout={"pixels": True})

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


def build_identity(cfg: IdentityAEConfig, data: DataConfig) -> IdentityAutoencoder:
    del cfg  # no settings
    return IdentityAutoencoder(data.frames, data.resolution)


register_autoencoder("identity", build_identity)
