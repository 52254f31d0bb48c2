"""The vdm folder's builders: what building or loading one of its models imports (pvdm.families.registry)."""

from __future__ import annotations

from pvdm.families.registry import register_denoiser
from pvdm.families.roles import LatentSpec
from pvdm.families.vdm.config import UNet3DConfig


def build_unet3d(cfg: UNet3DConfig, spec: LatentSpec):  # noqa: ANN201 (UNet3D)
    from pvdm.models.unet3d import UNet3D

    return UNet3D(cfg, spec)


register_denoiser("unet3d", build_unet3d)
