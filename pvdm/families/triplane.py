"""The PVDM family (paper sections 3.1-3.2): the triplane autoencoder and the triplane UNet denoiser."""

from __future__ import annotations

from pvdm.config.autoencoder import TriplaneAEConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import TriplaneUNetConfig
from pvdm.families.registry import register_autoencoder, register_denoiser
from pvdm.families.roles import LatentSpec
from pvdm.models.autoencoder import TriplaneAutoencoder
from pvdm.models.latent import triplane_shape
from pvdm.models.unet import TriplaneUNet


def build_triplane_autoencoder(cfg: TriplaneAEConfig, data: DataConfig) -> TriplaneAutoencoder:
    return TriplaneAutoencoder(cfg, frames=data.frames, resolution=data.resolution)


def build_triplane_unet(cfg: TriplaneUNetConfig, spec: LatentSpec) -> TriplaneUNet:
    return TriplaneUNet(cfg, triplane_shape(spec))


register_autoencoder("triplane", build_triplane_autoencoder)
register_denoiser("triplane_unet", build_triplane_unet)
