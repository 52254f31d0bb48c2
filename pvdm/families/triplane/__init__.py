"""The PVDM family (paper sections 3.1-3.2): the triplane autoencoder and the triplane UNet denoiser.

Config sections: `config.py`. Networks: the shared pvdm.models.autoencoder, .unet and .latent (VIDM's frame
UNets reuse the UNet's blocks). Samples with the shared samplers and Algorithm 1 (pvdm.diffusion).
"""

from __future__ import annotations

from pvdm.config.data import DataConfig
from pvdm.families.registry import Family, register_autoencoder, register_denoiser, register_family
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig


def build_triplane_autoencoder(cfg: TriplaneAEConfig, data: DataConfig) -> VideoAutoencoder:
    from pvdm.models.autoencoder import TriplaneAutoencoder

    return TriplaneAutoencoder(cfg, frames=data.frames, resolution=data.resolution)


def build_triplane_unet(cfg: TriplaneUNetConfig, spec: LatentSpec):  # noqa: ANN201 (TriplaneUNet)
    from pvdm.models.latent import triplane_shape
    from pvdm.models.unet import TriplaneUNet

    return TriplaneUNet(cfg, triplane_shape(spec))


register_autoencoder("triplane", build_triplane_autoencoder)
register_denoiser("triplane_unet", build_triplane_unet)
register_family(
    Family(
        "PVDM", "triplane", "triplane_unet", order=0,
        presets={"demo": "params.yaml", "paper-s": "params/pvdm-s.yaml", "paper-l": "params/pvdm-l.yaml"},
    )
)  # fmt: skip
