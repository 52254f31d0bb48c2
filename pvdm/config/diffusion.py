"""`diffusion`: the denoiser of a model family (`denoiser.type`), the noise process and the diffusion training.

Defaults are the official PVDM hyperparameters (configs/latent-diffusion/base.yaml of the paper's code):
UNet 256 channels, mult [1, 2, 4, 4], 2 res blocks, attention at downsample factors [4, 2, 1], 8 heads,
scale-shift norm; T = 1000 with betas 0.0015 -> 0.0195; eps prediction, x0 clipped; AdamW lr 1e-4, batch 64,
EMA 0.9999; condition probability lambda 0.3 (UCF-101; 0.2 for SkyTimelapse).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from pvdm.config.base import StrictModel
from pvdm.config.models import ModelSpec, dispatch_model_section
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


DEFAULT = "triplane_unet"  # `denoiser.type` when the section leaves it out: PVDM's


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
    convention: Literal["pvdm", "official"] = Field(
        "pvdm",
        description="how samplers walk the chain: pvdm (timesteps ceil((i + 1) T / steps) - 1; DDIM uses the eps "
        "consistent with the clipped x0); official: the official PVDM sampler's (losses/ddpm.py ddim_sample: "
        "truncated float linspace timesteps, the network's own eps after the clip), what `pvdm import "
        "--pvdm-diffusion` writes. Differs only when steps does not divide T, or x0 is clipped",
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
    denoiser: SerializeAsAny[ModelSpec] = Field(
        default_factory=lambda: dispatch_model_section("denoiser", DEFAULT, {})
    )
    process: ProcessConfig = Field(default_factory=ProcessConfig)
    train: DiffusionTrainConfig = Field(default_factory=DiffusionTrainConfig)

    @field_validator("denoiser", mode="wrap")
    @classmethod
    def _family_section(cls, value: object, handler: object) -> ModelSpec:
        return dispatch_model_section("denoiser", DEFAULT, value)
