"""`autoencoder`: the video autoencoder of a model family (`model.type`), its loss and its training.

`model` is one family's section, chosen by `type` (pvdm.config.models): `triplane` (PVDM's triplane transformer)
or `identity` (no compression: pixel-space families; nothing to train). `loss` and `train` are shared by the
trainable families.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, dispatch_model_section, register_model_config
from pvdm.config.training import TrainConfig


@register_model_config("autoencoder")
class TriplaneAEConfig(ModelSpec):
    type: Literal["triplane"] = "triplane"
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
    def _heads_divide_width(self) -> TriplaneAEConfig:
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        return self

    def check_data(self, resolution: int, frames: int) -> None:
        """The clip must tile into whole patches."""
        if resolution % self.patch_size:
            raise ConfigError(
                f"autoencoder.model.patch_size: data.resolution ({resolution}) must be divisible by it "
                f"(got {self.patch_size})"
            )


@register_model_config("autoencoder")
class IdentityAEConfig(ModelSpec):
    """Latent = the video itself, in [-1, 1]: the autoencoder of pixel-space families (nothing to train)."""

    type: Literal["identity"] = "identity"


class AELossConfig(StrictModel):
    pixel_loss: Literal["l1", "mse"] = Field(
        "l1", description="the pixel term: L1 (PVDM) or MSE (3D-VQGAN slides)"
    )
    l1_weight: float = Field(1.0, ge=0, description="weight of the pixel term (L1 or MSE, see pixel_loss)")
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


class AEValidationConfig(StrictModel):
    """What the train_autoencoder stage scores after training (held-out clips; evaluate does the full set)."""

    num_clips: int = Field(
        8, ge=1, description="held-out clips reconstructed, scored and shown in recon_grid.gif"
    )
    lpips_net: Literal["vgg", "alex"] = "vgg"


class AutoencoderConfig(StrictModel):
    model: SerializeAsAny[ModelSpec] = Field(default_factory=TriplaneAEConfig)
    loss: AELossConfig = Field(default_factory=AELossConfig)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(betas=[0.5, 0.9]))
    validation: AEValidationConfig = Field(default_factory=AEValidationConfig)

    @field_validator("model", mode="wrap")
    @classmethod
    def _family_section(cls, value: object, handler: object) -> ModelSpec:
        return dispatch_model_section("autoencoder", "triplane", value)

    def check_geometry(self, data: DataConfig) -> None:
        self.model.check_data(data.resolution, data.frames)
