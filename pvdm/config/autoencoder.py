"""`autoencoder`: the video autoencoder of a model family (`model.type`), its loss and its training.

`model` is one family's section, chosen by `type` (pvdm.config.models); the sections live in the families'
folders (pvdm/families/<name>/config.py), e.g. `triplane` (PVDM's triplane transformer), `vqgan3d`, `identity`
(no compression: pixel-space families; nothing to train). `loss` and `train` are shared by the trainable families.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny, field_validator

from pvdm.config.base import StrictModel
from pvdm.config.data import DataConfig
from pvdm.config.models import ModelSpec, dispatch_model_section
from pvdm.config.training import TrainConfig

DEFAULT = "triplane"  # `model.type` when the section leaves it out: PVDM's autoencoder


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
    model: SerializeAsAny[ModelSpec] = Field(
        default_factory=lambda: dispatch_model_section("autoencoder", DEFAULT, {})
    )
    loss: AELossConfig = Field(default_factory=AELossConfig)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(betas=[0.5, 0.9]))
    validation: AEValidationConfig = Field(default_factory=AEValidationConfig)

    @field_validator("model", mode="wrap")
    @classmethod
    def _family_section(cls, value: object, handler: object) -> ModelSpec:
        return dispatch_model_section("autoencoder", DEFAULT, value)

    def check_geometry(self, data: DataConfig) -> None:
        self.model.check_data(data.resolution, data.frames)
