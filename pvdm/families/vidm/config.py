"""`diffusion.denoiser` with `type: vidm`: VIDM's content and motion generators (Mei and Patel, AAAI 2023).

Pixel space: VIDM needs `autoencoder.model.type: identity`. Both generators are ADM-style image UNets
(pvdm.families.vidm.frame_unet) with the sizes below; each of the paper's additions is a switch, so its Table 3 ablations
can be rerun from params. The constants the paper leaves open, and where the defaults come from, are in
docs/families/vidm.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import ConfigError, StrictModel, inside_project
from pvdm.config.diffusion import check_unet_shape
from pvdm.config.models import ModelSpec, describe_latents, register_model_config
from pvdm.families.catalog import Family, register_family
from pvdm.families.latent_spec import LatentSpec
from pvdm.families.triplane.config import TriplaneUNetConfig

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class FlowConfig(StrictModel):
    """The optical-flow network (SpyNet) of the implicit motion condition, trained with the motion generator."""

    levels: int = Field(4, ge=1, le=8, description="pyramid levels (fewer are used on small frames)")
    widths: list[int] = Field(
        default_factory=lambda: [32, 64, 32, 16],
        min_length=1,
        description="conv widths of each level's network (SpyNet: 32-64-32-16, then 2 flow channels)",
    )
    kernel: int = Field(7, ge=1, le=15, description="conv kernel size (SpyNet: 7)")
    weights: str | None = Field(
        None,
        description="start from these SpyNet weights (a torch state dict of pvdm's SpyNet), a path relative to "
        "the project; none: random initialisation. Never downloaded",
    )
    weights_sha256: str | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description="SHA-256 of `weights` (required with it): checked before loading",
    )
    allow_outside_project: bool = Field(
        False, description="let `weights` name a file outside the project folder"
    )

    @model_validator(mode="after")
    def _weights_are_pinned(self) -> FlowConfig:
        if self.weights is not None and self.weights_sha256 is None:
            raise ValueError(
                "weights_sha256 is required with weights: the file is checked before it is loaded "
                "(sha256sum <file>)"
            )
        if self.weights is not None and not self.allow_outside_project:
            parts = Path(self.weights).parts
            if Path(self.weights).is_absolute() or ".." in parts:
                raise ValueError(
                    f"weights {self.weights!r} leaves the project folder; give a path inside it, or set "
                    "allow_outside_project: true"
                )
        if any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be >= 1 (got {self.widths})")
        if self.kernel % 2 == 0:
            raise ValueError(
                f"kernel must be odd, so the flow stays aligned with the frame (got {self.kernel})"
            )
        return self

    def weights_path(self, root: Path) -> Path | None:
        """The weights file resolved against the project root, refused outside it without the flag."""
        if self.weights is None:
            return None
        key = "diffusion.denoiser.flow"
        return inside_project(
            root, self.weights, f"{key}.weights", f"{key}.allow_outside_project", self.allow_outside_project
        )


@register_model_config("denoiser")
class VIDMConfig(ModelSpec):
    type: Literal["vidm"] = "vidm"
    # the ADM-style UNet both generators use (the motion generator's base network too)
    model_channels: int = Field(128, ge=1, description="channels at the first level")
    channel_mult: list[int] = Field(
        default_factory=lambda: [1, 2, 2, 4], min_length=1, description="channel multiplier per level"
    )
    num_res_blocks: int = Field(2, ge=1, description="res blocks per level on the way down")
    attention_resolutions: list[int] = Field(
        default_factory=lambda: [4, 8], description="downsample factors (1 = full frame) with self-attention"
    )
    mid_attention: bool = Field(True, description="self-attention in the middle block")
    num_heads: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_scale_shift_norm: bool = Field(
        True, description="ADM's adaptive GroupNorm: norm(h) * (1 + s) + b from t"
    )
    norm_groups: int = Field(32, ge=1, description="GroupNorm groups (reduced to gcd(groups, channels))")
    num_classes: int = Field(0, ge=0, description="class labels (0: unconditional); one more = null class")
    activation_checkpointing: bool = Field(False, description="recompute block activations in backward")
    # the paper's additions, each a switch (Table 3)
    truncation: bool = Field(True, description="content generator: sampling-space truncation constant")
    robust_loss: bool = Field(
        True,
        description="robustness penalty: Charbonnier loss on the noise error (off: DDPM's squared error)",
    )
    implicit_condition: bool = Field(
        True,
        description="motion generator: SpyNet's flow between the first and the latest frame as condition",
    )
    posgn: bool = Field(
        True, description="motion generator: positional group normalisation after every block"
    )
    feature_residual: bool = Field(
        True, description="motion generator: a base network on (x_t, first frame) plus the learned residual"
    )
    motion_weight: float = Field(
        1.0, gt=0.0, description="weight of the motion generator's loss against the content generator's"
    )
    max_frames: int = Field(
        128, ge=2, le=65536, description="PosGN: the frame index n is given as n / max_frames (longer videos still "
        "sample; their coordinates run past 1)",
    )  # fmt: skip
    flow: FlowConfig = Field(default_factory=FlowConfig)

    @model_validator(mode="after")
    def _shapes_are_consistent(self) -> VIDMConfig:
        check_unet_shape(self.model_channels, self.channel_mult, self.num_heads, self.attention_resolutions)
        return self

    def frame_unet(self) -> TriplaneUNetConfig:
        """The UNet sizes as the frame UNet takes them (it is built from the triplane denoiser's blocks)."""
        keys = ("model_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "mid_attention",
                "num_heads", "dropout", "use_scale_shift_norm", "norm_groups", "num_classes",
                "activation_checkpointing")  # fmt: skip
        return TriplaneUNetConfig(**{key: getattr(self, key) for key in keys})

    def check_data(self, resolution: int, frames: int) -> None:
        factor = 2 ** (len(self.channel_mult) - 1)
        if resolution % factor:
            raise ConfigError(
                f"diffusion.denoiser: data.resolution ({resolution}) must be divisible by {factor}, the UNet's "
                f"downsampling over {len(self.channel_mult)} levels"
            )

    def accepts(self, spec: LatentSpec) -> str | None:
        if len(spec.shape) != 4 or not spec.layout.get("pixels"):
            return f"vidm generates pixels frame by frame: it needs the identity autoencoder's pixel clips, not {describe_latents(spec)}"
        return None


register_family(
    Family("VIDM", "identity", "vidm", order=3, presets={"demo": "params/vidm.yaml", "paper": "params/vidm-128.yaml"})
)  # fmt: skip
