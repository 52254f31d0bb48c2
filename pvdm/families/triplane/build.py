"""The triplane folder's builders: what building or loading one of its models imports (pvdm.families.registry)."""

from __future__ import annotations

from pvdm.config.data import DataConfig
from pvdm.families.registry import register_autoencoder, register_denoiser
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig


def build_triplane_autoencoder(cfg: TriplaneAEConfig, data: DataConfig) -> VideoAutoencoder:
    if cfg.layout == "official":
        from pvdm.families.triplane.official_autoencoder import OfficialTriplaneAutoencoder

        return OfficialTriplaneAutoencoder(cfg, frames=data.frames, resolution=data.resolution)
    from pvdm.models.autoencoder import TriplaneAutoencoder

    return TriplaneAutoencoder(cfg, frames=data.frames, resolution=data.resolution)


def build_triplane_unet(cfg: TriplaneUNetConfig, spec: LatentSpec):  # noqa: ANN201 (TriplaneUNet)
    from pvdm.models.latent import triplane_shape

    if cfg.layout == "official":
        from pvdm.families.triplane.official_unet import OfficialTriplaneUNet

        return OfficialTriplaneUNet(cfg, triplane_shape(spec))
    from pvdm.models.unet import TriplaneUNet

    return TriplaneUNet(cfg, triplane_shape(spec))


register_autoencoder("triplane", build_triplane_autoencoder)
register_denoiser("triplane_unet", build_triplane_unet)
