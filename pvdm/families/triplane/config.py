"""The PVDM family's config sections: `autoencoder.model` with `type: triplane` (the triplane transformer autoencoder,
paper section 3.1) and `diffusion.denoiser` with `type: triplane_unet` (one 2D UNet shared by the three planes,
section 3.2). VIDM's frame UNets reuse TriplaneUNetConfig's fields.

The autoencoder has two layouts: `pvdm` (pvdm's own network, pvdm.models.autoencoder) and `official` (the official
PVDM code's ViTAutoencoder weight for weight, pvdm.families.triplane.official_autoencoder: what `pvdm import
--pvdm-autoencoder` writes). Both make the same latents (latent_spec), so every denoiser and stage takes either."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import check_unet_shape
from pvdm.config.models import ModelSpec, describe_latents, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.latent_spec import LatentSpec
from pvdm.models.triplane_geometry import LatentShape, is_triplane, triplane_shape, triplane_spec


class OfficialAESizes(StrictModel):
    """Sizes only the official layout has: the official ViTAutoencoder hard-codes them (the defaults are its values);
    `pvdm import` reads them from a checkpoint's tensors, except `projection_heads` (see docs/official-weights.md)."""

    head_dim: int = Field(
        64,
        ge=2,
        multiple_of=2,
        description="width of each encoder/decoder attention head (official: 64 at any width)",
    )
    projection_heads: int = Field(
        4, ge=1, description="heads of the three projection transformers (official: 4)"
    )
    projection_head_dim: int | None = Field(
        None, ge=1, description="width of each projection head; null: width // 8 (the official's)"
    )
    projection_mlp: int = Field(
        512, ge=1, description="hidden width of the projection transformers' MLP (official: 512 at any width)"
    )

    def projection_head_width(self, width: int) -> int:
        return self.projection_head_dim or max(width // 8, 1)


@register_model_config("autoencoder")
class TriplaneAEConfig(ModelSpec):
    type: Literal["triplane"] = "triplane"
    layout: Literal["pvdm", "official"] = Field(
        "pvdm",
        description="pvdm: pvdm's network; official: the official PVDM code's network weight for weight (rotary "
        "TimeSformer, GEGLU MLPs, 1x1 convs around the tanh, planes summed into the decoder, ConvTranspose2d + "
        "sigmoid head), what `pvdm import --pvdm-autoencoder` writes. Same latents either way",
    )
    width: int = Field(384, ge=8, description="transformer width (token channels)")
    heads: int = Field(8, ge=1)
    patch_size: int = Field(8, ge=1, description="spatial patch size d: planes are (H/d, W/d)")
    latent_channels: int = Field(4, ge=1)
    encoder_depth: int = Field(8, ge=1, description="divided space-time attention blocks in the encoder")
    decoder_depth: int = Field(8, ge=1)
    projection_depth: int = Field(4, ge=1, description="blocks in each of the three projection transformers")
    mlp_ratio: float = Field(4.0, gt=0)
    activation_checkpointing: bool = Field(
        False, description="recompute block activations in backward to save memory"
    )
    official: OfficialAESizes = Field(
        default_factory=OfficialAESizes,
        description="layout official only: the sizes pvdm's layout has no use for",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TriplaneAEConfig:
        if self.layout == "pvdm" and self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        hidden = self.width * self.mlp_ratio  # the official MLP's width: a whole number of channels
        if self.layout == "official" and abs(hidden - round(hidden)) > 1e-6:
            raise ValueError(
                f"layout official: width * mlp_ratio ({self.width} * {self.mlp_ratio}) must be a whole number"
            )
        return self

    def check_data(self, resolution: int, frames: int) -> None:
        """The clip must tile into whole patches."""
        if resolution % self.patch_size:
            raise ConfigError(
                f"autoencoder.model.patch_size: data.resolution ({resolution}) must be divisible by it "
                f"(got {self.patch_size})"
            )

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        side = data.resolution // self.patch_size
        return triplane_spec(LatentShape(self.latent_channels, data.frames, side, side))


class OfficialUNetSizes(StrictModel):
    """What only the official denoiser layout has (pvdm.families.triplane.official_unet); the defaults are
    configs/latent-diffusion/base.yaml's. `pvdm import --pvdm-diffusion` reads all three from the tensors."""

    cond_model: bool = Field(
        True,
        description="the previous clip's latent concatenated to z_t on channels (zeros: no condition), as the "
        "official `cond_model: True`; false: an unconditional network (a condition given to it is ignored)",
    )
    resblock_updown: bool = Field(
        True, description="resample inside res blocks (avg pool / nearest); false: separate resampling layers"
    )
    conv_resample: bool = Field(
        True, description="resblock_updown false: a stride-2 conv down and a conv after the nearest upsample"
    )


@register_model_config("denoiser")
class TriplaneUNetConfig(ModelSpec):
    """PVDM's denoiser: one 2D UNet shared by the three latent planes (pvdm.models.unet)."""

    type: Literal["triplane_unet"] = "triplane_unet"
    layout: Literal["pvdm", "official"] = Field(
        "pvdm",
        description="pvdm: pvdm's network (pvdm.models.unet, attention_layout applies); official: the official "
        "PVDM UNetModel weight for weight (pvdm.families.triplane.official_unet: joint attention after every "
        "block, plane attention at attention_resolutions, res-block resampling, the condition on channels), "
        "what `pvdm import --pvdm-diffusion` writes. plane_embedding, mid_attention, attention_layout and "
        "activation_checkpointing do not apply to it",
    )
    model_channels: int = Field(256, ge=1, description="channels at the first level")
    channel_mult: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 4], min_length=1, description="channel multiplier per level"
    )
    num_res_blocks: int = Field(2, ge=1, description="res blocks per level on the way down")
    attention_resolutions: list[int] = Field(
        default_factory=lambda: [4, 2, 1],
        description="downsample factors (1 = full plane size) whose blocks end with joint triplane attention",
    )
    mid_attention: bool = Field(True, description="joint attention in the middle block")
    attention_layout: Literal["compact", "official"] = Field(
        "compact",
        description="compact: joint attention closes the blocks at attention_resolutions (pvdm's default); "
        "official: as the official PVDM code, joint attention after every block at every level, plus attention "
        "within each plane at attention_resolutions (bench.attention_layout compares them)",
    )
    num_heads: int = Field(8, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_scale_shift_norm: bool = Field(
        True, description="FiLM: norm(h) * (1 + scale) + shift from the time embedding"
    )
    norm_groups: int = Field(
        32, ge=1, description="GroupNorm groups (reduced to gcd(groups, channels) where needed)"
    )
    plane_embedding: bool = Field(
        True,
        description="learned per-plane vector added to the time embedding: tells the shared UNet which plane",
    )
    activation_checkpointing: bool = Field(False, description="recompute block activations in backward")
    num_classes: int = Field(
        0,
        ge=0,
        description="class labels the model is conditioned on (0: unconditional); one more = null class",
    )
    official: OfficialUNetSizes = Field(
        default_factory=OfficialUNetSizes,
        description="layout official only: the switches pvdm's layout lacks",
    )

    @model_validator(mode="after")
    def _shapes_are_consistent(self) -> TriplaneUNetConfig:
        every_level = [2**level for level in range(len(self.channel_mult))]
        official = self.attention_layout == "official" or self.layout == "official"
        attended = every_level if official else self.attention_resolutions
        check_unet_shape(self.model_channels, self.channel_mult, self.num_heads, attended)
        if self.layout == "official":
            self._check_official()
        return self

    def _check_official(self) -> None:
        """The official network's own rules: GroupNorm groups divide every width exactly (no gcd fallback), no
        classes (the official PVDM UNet has none)."""
        for mult in self.channel_mult:
            if (self.model_channels * mult) % self.norm_groups:
                raise ValueError(
                    f"layout official: norm_groups ({self.norm_groups}) must divide every level's channels "
                    f"(model_channels {self.model_channels} x mult {mult})"
                )
        if self.channel_mult[0] != 1:  # its last conv takes model_channels whatever the first level's width
            raise ValueError(f"layout official: channel_mult must start with 1 (got {self.channel_mult})")
        if self.num_classes:
            raise ValueError("layout official: num_classes must be 0 (the official PVDM UNet has no classes)")

    def accepts(self, spec: LatentSpec) -> str | None:
        if not is_triplane(spec):
            return f"triplane_unet models packed triplane latents (C, L), not {describe_latents(spec)}"
        if self.layout == "official":
            factor = 2 ** (len(self.channel_mult) - 1)
            sides = sorted({side for plane in triplane_shape(spec).plane_shapes for side in plane})
            if any(side % factor for side in sides):
                return (
                    f"layout official halves every plane exactly {len(self.channel_mult) - 1} times: plane sides "
                    f"{sides} must be multiples of {factor}"
                )
        return None


register_family(
    Family(
        "PVDM", "triplane", "triplane_unet", order=0,
        presets={"demo": "params.yaml", "paper-s": "params/pvdm-s.yaml", "paper-l": "params/pvdm-l.yaml",
                 "official": "params/pvdm-official.yaml"},
    )
)  # fmt: skip
