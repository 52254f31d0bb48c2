"""The 3D-VQGAN family's autoencoder (`vqgan3d`); its denoiser is the 3D UNet (`unet3d`, pvdm.families.vdm)."""

from __future__ import annotations

from pvdm.config.data import DataConfig
from pvdm.config.vqgan3d import VQGAN3DConfig
from pvdm.families.registry import register_autoencoder
from pvdm.models.vqgan3d import VQGAN3D


def build_vqgan3d(cfg: VQGAN3DConfig, data: DataConfig) -> VQGAN3D:
    return VQGAN3D(cfg, frames=data.frames, resolution=data.resolution)


register_autoencoder("vqgan3d", build_vqgan3d)
