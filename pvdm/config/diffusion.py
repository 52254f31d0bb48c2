"""`diffusion`: the denoiser of a model family (`denoiser.type`), the noise process and the diffusion training.

Defaults are the official PVDM hyperparameters (configs/latent-diffusion/base.yaml of the paper's code):
UNet 256 channels, mult [1, 2, 4, 4], 2 res blocks, attention at downsample factors [4, 2, 1], 8 heads,
scale-shift norm; T = 1000 with betas 0.0015 -> 0.0195; eps prediction, x0 clipped; AdamW lr 1e-4, batch 64,
EMA 0.9999; condition probability lambda 0.3 (UCF-101; 0.2 for SkyTimelapse).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.models import ModelSpec, dispatch_model_section, register_model_config
from pvdm.config.training import TrainConfig


def check_unet_shape(
    channels: int, channel_mult: list[int], heads: int, attention_resolutions: list[int]
) -> None:
    """The rules every UNet section shares: positive multipliers, heads dividing every level's channels, attention
    only at downsample factors the UNet has."""
    if any(m < 1 for m in channel_mult):
        raise ValueError(f"channel_mult entries must be >= 1 (got {channel_mult})")
    for mult in channel_mult:
        if (channels * mult) % heads:
            raise ValueError(
                f"num_heads ({heads}) must divide every level's channels (model_channels {channels} x mult {mult})"
            )
    factors = [2**level for level in range(len(channel_mult))]
    bad = [r for r in attention_resolutions if r not in factors]
    if bad:
        raise ValueError(f"attention_resolutions {bad} are not downsample factors of this UNet ({factors})")


@register_model_config("denoiser")
class TriplaneUNetConfig(ModelSpec):
    """PVDM's denoiser: one 2D UNet shared by the three latent planes (pvdm.models.unet)."""

    type: Literal["triplane_unet"] = "triplane_unet"
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

    @model_validator(mode="after")
    def _shapes_are_consistent(self) -> TriplaneUNetConfig:
        every_level = [2**level for level in range(len(self.channel_mult))]
        attended = every_level if self.attention_layout == "official" else self.attention_resolutions
        check_unet_shape(self.model_channels, self.channel_mult, self.num_heads, attended)
        return self

    def check_autoencoder(self, autoencoder: ModelSpec) -> None:
        if autoencoder.type != "triplane":
            raise ConfigError(
                "diffusion.denoiser.type: triplane_unet models triplane latents, but autoencoder.model.type is "
                f"{autoencoder.type!r} (got 'triplane_unet')"
            )


class ProcessConfig(StrictModel):
    timesteps: int = Field(1000, ge=1, description="T: length of the forward noising chain")
    schedule: Literal["linear", "ddpm_linear", "cosine"] = Field(
        "linear",
        description="linear: linear in sqrt(beta) (LDM/PVDM convention); ddpm_linear: linear in beta itself (Ho et "
        "al. 2020, improved-diffusion; VIDM's code base); cosine: Nichol & Dhariwal",
    )
    beta_start: float = Field(0.0015, gt=0.0, lt=1.0)
    beta_end: float = Field(0.0195, gt=0.0, lt=1.0)
    prediction: Literal["eps"] = Field("eps", description="what the network predicts")
    clip_x0: bool = Field(
        True,
        description="clip predicted x0 to the latents' bound while sampling (the LatentSpec's; none: no clip)",
    )

    @model_validator(mode="after")
    def _betas_increase(self) -> ProcessConfig:
        if self.beta_end < self.beta_start:
            raise ValueError(f"beta_end ({self.beta_end}) must be >= beta_start ({self.beta_start})")
        return self


class DiffusionTrainConfig(TrainConfig):
    batch_size: int = Field(
        64, ge=1, le=65536, description="clips per optimizer step, summed over all workers"
    )
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    ema_decay: float = Field(0.9999, ge=0.0, le=1.0)
    ema_every: int = Field(
        1,
        ge=1,
        description="update the EMA every N optimizer steps (the official PVDM code: 25 at decay 0.9999)",
    )
    ema_warmup: bool = Field(
        True, description="use min(decay, (1 + n) / (10 + n)) after n updates, so early EMA tracks the model"
    )
    jitter_windows: int = Field(
        0,
        ge=0,
        le=64,
        description="temporal jitter: clip-long windows cached between each pair of consecutive clips, at evenly "
        "spaced starts, as extra unconditional targets (the official code starts its targets anywhere in a "
        "two-clip window); 0: the clip grid only",
    )
    cond_prob: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="lambda: chance a sample is conditioned on its previous clip's latent",
    )
    label_drop_prob: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="class-conditional models: chance a sample's label is replaced by the null class, so one "
        "model learns p(x | class) and p(x) for classifier-free guidance",
    )


class DiffusionConfig(StrictModel):
    denoiser: SerializeAsAny[ModelSpec] = Field(default_factory=TriplaneUNetConfig)
    process: ProcessConfig = Field(default_factory=ProcessConfig)
    train: DiffusionTrainConfig = Field(default_factory=DiffusionTrainConfig)

    @field_validator("denoiser", mode="wrap")
    @classmethod
    def _family_section(cls, value: object, handler: object) -> ModelSpec:
        return dispatch_model_section("denoiser", "triplane_unet", value)
