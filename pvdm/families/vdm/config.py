"""`diffusion.denoiser` with `type: unet3d`: the factorised space-time 3D UNet (Ho et al. 2022).

Models (C, T, H, W) latents: pixels (pixel VDM, with `autoencoder.model.type: identity`) or a 3D latent grid.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.diffusion import check_unet_shape
from pvdm.config.models import ModelSpec, describe_latents, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.latent_spec import LatentSpec


@register_model_config("denoiser")
class UNet3DConfig(ModelSpec):
    type: Literal["unet3d"] = "unet3d"
    model_channels: int = Field(64, ge=1, description="channels at the first level")
    channel_mult: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8], min_length=1, description="channel multiplier per level"
    )
    num_res_blocks: int = Field(2, ge=1, description="res blocks per level on the way down")
    attention_resolutions: list[int] = Field(
        default_factory=lambda: [4, 8],
        description="spatial downsample factors (1 = full size) whose blocks add spatial and temporal attention",
    )
    num_heads: int = Field(4, ge=1)
    temporal_attention: bool = Field(
        True, description="attention across frames (off: a per-frame image model)"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm_groups: int = Field(32, ge=1, description="GroupNorm groups (reduced to gcd(groups, channels))")
    num_classes: int = Field(0, ge=0, description="class labels (0: unconditional); one more = null class")
    activation_checkpointing: bool = Field(False, description="recompute block activations in backward")

    @model_validator(mode="after")
    def _shapes_are_consistent(self) -> UNet3DConfig:
        check_unet_shape(self.model_channels, self.channel_mult, self.num_heads, self.attention_resolutions)
        return self

    def accepts(self, spec: LatentSpec) -> str | None:
        if len(spec.shape) != 4:
            return (
                f"unet3d models (C, T, H, W) latent grids, not {describe_latents(spec)}: the triplane autoencoder "
                "makes packed planes (use triplane_unet), the identity and vqgan3d autoencoders make grids"
            )
        return None


register_family(
    Family("pixel VDM", "identity", "unet3d", order=1,
           presets={"demo": "params/vdm.yaml", "paper": "params/vdm-256.yaml"})
)  # fmt: skip
