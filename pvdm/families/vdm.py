"""The video diffusion model family (Ho et al. 2022): the factorised space-time 3D UNet denoiser `unet3d`.

With the identity autoencoder it is the pixel-space VDM baseline of the PVDM paper's Table 5; it also models any
(C, T, H, W) latent grid (the 3D-VQGAN family).
"""

from __future__ import annotations

from pvdm.config.unet3d import UNet3DConfig
from pvdm.families.registry import register_denoiser
from pvdm.families.roles import LatentSpec
from pvdm.models.unet3d import UNet3D


def build_unet3d(cfg: UNet3DConfig, spec: LatentSpec) -> UNet3D:
    return UNet3D(cfg, spec)


register_denoiser("unet3d", build_unet3d)
