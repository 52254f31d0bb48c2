"""`autoencoder.model` with `type: identity`: no compression, the latent is the clip (pixel-space families)."""

from __future__ import annotations

from typing import Literal

from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, register_model_config
from pvdm.families.latent_spec import LatentSpec


def pixel_spec(frames: int, resolution: int) -> LatentSpec:
    """Pixels in [-1, 1]; a prior sample is uniform noise video (the noise baseline of pixel families)."""
    shape = (3, frames, resolution, resolution)
    return LatentSpec(shape=shape, bound=1.0, prior="uniform", dtype="uint8", layout={"pixels": True})


@register_model_config("autoencoder")
class IdentityAEConfig(ModelSpec):
    """Latent = the video itself, in [-1, 1]: the autoencoder of pixel-space families (nothing to train)."""

    type: Literal["identity"] = "identity"

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        return pixel_spec(data.frames, data.resolution)
