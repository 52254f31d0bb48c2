"""`autoencoder.model` with `type: vqgan3d`: a 3D convolutional VQGAN (TATS-style) with an EMA codebook.

TATS (the closest public code) uses a 16,384 x 256 codebook and downsamples 4 x 8 x 8 (time x height x width); the
defaults here are those, the demo preset is far smaller. The losses (pixel, LPIPS, 2D + 3D PatchGAN with feature
matching) are the shared `autoencoder.loss` section; `commitment_weight` is this family's own VQ term.

Two layouts: `pvdm` (pvdm's network, pvdm.models.vqgan3d) and `tats` (TATS's VQGAN weight for weight,
pvdm.families.vqgan3d.tats: what `pvdm import --tats-vqgan` writes). In the tats layout `channels` is TATS's
`n_hiddens`, the channels double at every level, `codebook_dim` / `codebook_size` are its `embedding_dim` /
`n_codes`, and `channel_mult`, `num_res_blocks`, `norm_groups`, `ema_decay`, `dead_code_threshold` and
`stats_momentum` are unused (TATS fixes them or the import does not train the codebook).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.latent_spec import LatentSpec


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


TATS_GROUPS = 32  # TATS's GroupNorm has 32 groups at every width


class TATSOptions(StrictModel):
    """What only the tats layout has: TATS's `norm_type` and `padding_type` (its defaults are the values here)."""

    norm: Literal["group", "batch"] = Field(
        "group",
        description="TATS norm_type: GroupNorm(32, eps 1e-6) or (Sync)BatchNorm (the released models')",
    )
    padding: Literal["replicate", "constant", "reflect", "circular"] = Field(
        "replicate",
        description="TATS padding_type: the encoder's convolutions pad with it (TATS pads every other conv "
        "with replicate)",
    )


@register_model_config("autoencoder")
class VQGAN3DConfig(ModelSpec):
    type: Literal["vqgan3d"] = "vqgan3d"
    layout: Literal["pvdm", "tats"] = Field(
        "pvdm",
        description="pvdm: pvdm's network; tats: TATS's VQGAN weight for weight (what `pvdm import --tats-vqgan` "
        "writes; its latents are the quantised codes' embeddings, see pvdm.families.vqgan3d.tats)",
    )
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
    tats: TATSOptions = Field(default_factory=TATSOptions, description="layout tats only")

    @model_validator(mode="after")
    def _factors_are_powers_of_two(self) -> VQGAN3DConfig:
        for name in ("temporal_downsample", "spatial_downsample"):
            if not _power_of_two(getattr(self, name)):
                raise ValueError(f"{name} must be a power of 2 (got {getattr(self, name)})")
        if self.layout == "tats":
            if max(self.temporal_downsample, self.spatial_downsample) < 2:
                raise ValueError(
                    "layout tats downsamples at least one axis (TATS has no network without a level)"
                )
            if self.tats.norm == "group" and (2 * self.channels) % TATS_GROUPS:
                raise ValueError(
                    f"layout tats with group norm: 2 x channels ({2 * self.channels}) must be divisible by "
                    f"TATS's {TATS_GROUPS} groups"
                )
        return self

    @property
    def levels(self) -> int:
        """Downsampling levels: one per halving of the most compressed axis."""
        return max(self.temporal_downsample, self.spatial_downsample).bit_length() - 1

    def check_data(self, resolution: int, frames: int) -> None:
        for key, size, factor in (("data.resolution", resolution, self.spatial_downsample),
                                  ("data.frames", frames, self.temporal_downsample)):  # fmt: skip
            if size % factor:
                raise ConfigError(
                    f"autoencoder.model: {key} ({size}) must be divisible by the downsampling factor {factor}"
                )

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        """Continuous latents of codebook_dim channels per cell, normalised per channel: unbounded, normal prior
        (layout pvdm: pre-quantisation, by running statistics; tats: the codes' embeddings, by the codebook's
        usage-weighted statistics)."""
        side = data.resolution // self.spatial_downsample
        shape = (self.codebook_dim, data.frames // self.temporal_downsample, side, side)
        return LatentSpec(
            shape, bound=None, prior="normal", codebook_size=self.codebook_size, dtype="float16"
        )


register_family(
    Family("3D-VQGAN + VDM", "vqgan3d", "unet3d", order=2,
           presets={"demo": "params/vqgan-vdm.yaml", "paper": "params/vqgan-vdm-128.yaml"})
)  # fmt: skip
