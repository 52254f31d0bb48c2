"""The vqgan3d folder's builders: what building or loading one of its models imports (pvdm.families.registry)."""

from __future__ import annotations

from pvdm.config.data import DataConfig
from pvdm.families.registry import register_autoencoder
from pvdm.families.roles import VideoAutoencoder
from pvdm.families.vqgan3d.config import VQGAN3DConfig


def build_vqgan3d(cfg: VQGAN3DConfig, data: DataConfig) -> VideoAutoencoder:
    if cfg.layout == "tats":
        from pvdm.families.vqgan3d.tats import TATSVQGAN

        return TATSVQGAN(cfg, frames=data.frames, resolution=data.resolution)
    from pvdm.models.vqgan3d import VQGAN3D

    return VQGAN3D(cfg, frames=data.frames, resolution=data.resolution)


register_autoencoder("vqgan3d", build_vqgan3d)
