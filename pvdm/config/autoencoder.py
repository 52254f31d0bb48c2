"""`autoencoder`: the triplane autoencoder, its loss and its training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.data import DataConfig
from pvdm.config.training import TrainConfig


class AEModelConfig(StrictModel):
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

    @model_validator(mode="after")
    def _heads_divide_width(self) -> AEModelConfig:
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        return self


class AELossConfig(StrictModel):
    l1_weight: float = Field(1.0, ge=0)
    lpips_weight: float = Field(1.0, ge=0)
    lpips_net: Literal["vgg", "alex"] = "vgg"
    lpips_frames: int = Field(1, ge=1, description="random frames per clip scored by LPIPS")
    gan_start_step: int | None = Field(
        None, ge=0, description="step at which the GAN phase begins; null = never"
    )
    gan_weight: float = Field(1.0, ge=0)
    feature_matching_weight: float = Field(4.0, ge=0)
    disc_channels: int = Field(64, ge=4)
    disc_layers: int = Field(3, ge=1)
    disc_lr: float = Field(1e-4, gt=0)


class AutoencoderConfig(StrictModel):
    model: AEModelConfig = Field(default_factory=AEModelConfig)
    loss: AELossConfig = Field(default_factory=AELossConfig)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(betas=[0.5, 0.9]))

    def check_geometry(self, data: DataConfig) -> None:
        """The cross-section rule: the clip must tile into whole patches."""
        d = self.model.patch_size
        if data.resolution % d:
            raise ConfigError(
                f"autoencoder.model.patch_size: data.resolution ({data.resolution}) must be divisible by it (got {d})"
            )
