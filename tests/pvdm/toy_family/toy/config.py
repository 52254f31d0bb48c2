"""The toy family's config sections: what a new family's `config.py` holds (docs/architecture.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, describe_latents, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.latent_spec import LatentSpec


@register_model_config("autoencoder")
class ToyAEConfig(ModelSpec):
    type: Literal["toy_ae"] = "toy_ae"
    channels: int = Field(4, ge=1)

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        """Height and width halved; unbounded latents with a normal prior."""
        side = data.resolution // 2
        return LatentSpec(
            (self.channels, data.frames, side, side), bound=None, prior="normal", dtype="float32"
        )


@register_model_config("denoiser")
class ToyDenoiserConfig(ModelSpec):
    type: Literal["toy_denoiser"] = "toy_denoiser"
    width: int = Field(16, ge=4)

    def accepts(self, spec: LatentSpec) -> str | None:
        return (
            None
            if len(spec.shape) == 4
            else f"toy_denoiser models (C, T, H, W) grids, not {describe_latents(spec)}"
        )


register_family(Family("Toy", "toy_ae", "toy_denoiser", presets={"demo": "tests/pvdm/toy_family/toy.yaml"}))
