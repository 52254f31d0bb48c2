"""`autoencoder.model` with `type: vqgan3d`: a 3D convolutional VQGAN (TATS-style) with an EMA codebook.

TATS (the closest public code) uses a 16,384 x 256 codebook and downsamples 4 x 8 x 8 (time x height x width); the
defaults here are those, the demo preset is far smaller. The losses (pixel, LPIPS, 2D + 3D PatchGAN with feature
matching) are the shared `autoencoder.loss` section; `commitment_weight` is this family's own VQ term.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import ConfigError
from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.roles import LatentSpec


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@register_model_config("autoencoder")
class VQGAN3DConfig(ModelSpec):
    type: Literal["vqgan3d"] = "vqgan3d"
    channels: int = Field(64, ge=4, description="channels of the first level")
    channel_mult: list[int] = Field(
        default_factory=lambda: [1, 2, 2, 4], min_length=1, description="channel multiplier per level"
    )
    num_res_blocks: int = Field(1, ge=1, description="residual blocks per level")
    temporal_downsample: int = Field(4, ge=1, description="time compression factor (a power of 2)")
    spatial_downsample: int = Field(8, ge=1, description="height and width compression factor (a power of 2)")
    codebook_size: int = Field(16384, ge=2)
    codebook_dim: int = Field(256, ge=1, description="channels of a code (the latent's channels)")
    commitment_weight: float = Field(0.25, ge=0.0, description="beta of the VQ commitment loss")
    ema_decay: float = Field(0.99, gt=0.0, lt=1.0, description="EMA decay of the codebook statistics")
    dead_code_threshold: float = Field(
        1.0,
        ge=0.0,
        description="a code whose EMA usage count falls below this is restarted on an encoder output",
    )
    norm_groups: int = Field(32, ge=1, description="GroupNorm groups (reduced to gcd(groups, channels))")
    stats_momentum: float = Field(
        0.01, gt=0.0, le=1.0, description="momentum of the running latent mean/std that normalise the latents"
    )

    @model_validator(mode="after")
    def _factors_are_powers_of_two(self) -> VQGAN3DConfig:
        for name in ("temporal_downsample", "spatial_downsample"):
            if not _power_of_two(getattr(self, name)):
                raise ValueError(f"{name} must be a power of 2 (got {getattr(self, name)})")
        return self

    def check_data(self, resolution: int, frames: int) -> None:
        for key, size, factor in (("data.resolution", resolution, self.spatial_downsample),
                                  ("data.frames", frames, self.temporal_downsample)):  # fmt: skip
            if size % factor:
                raise ConfigError(
                    f"autoencoder.model: {key} ({size}) must be divisible by the downsampling factor {factor}"
                )

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        """Continuous pre-quantisation latents, normalised by running statistics: unbounded, normal prior."""
        side = data.resolution // self.spatial_downsample
        shape = (self.codebook_dim, data.frames // self.temporal_downsample, side, side)
        return LatentSpec(
            shape, bound=None, prior="normal", codebook_size=self.codebook_size, dtype="float16"
        )


register_family(
    Family("3D-VQGAN + VDM", "vqgan3d", "unet3d", order=2,
           presets={"demo": "params/vqgan-vdm.yaml", "paper": "params/vqgan-vdm-128.yaml"})
)  # fmt: skip
