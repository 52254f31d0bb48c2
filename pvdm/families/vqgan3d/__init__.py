"""The 3D-VQGAN + VDM family: the 3D-VQGAN autoencoder (`vqgan3d`, TATS-style, EMA codebook) and the 3D UNet
denoiser (`unet3d`, pvdm.families.vdm), class-conditional with classifier-free guidance. Config section:
`config.py`; network: pvdm.models.vqgan3d.
"""

from __future__ import annotations

from pvdm.config.data import DataConfig
from pvdm.families.registry import Family, register_autoencoder, register_family
from pvdm.families.roles import VideoAutoencoder
from pvdm.families.vqgan3d.config import VQGAN3DConfig


def build_vqgan3d(cfg: VQGAN3DConfig, data: DataConfig) -> VideoAutoencoder:
    from pvdm.models.vqgan3d import VQGAN3D

    return VQGAN3D(cfg, frames=data.frames, resolution=data.resolution)


register_autoencoder("vqgan3d", build_vqgan3d)
register_family(
    Family("3D-VQGAN + VDM", "vqgan3d", "unet3d", order=2,
           presets={"demo": "params/vqgan-vdm.yaml", "paper": "params/vqgan-vdm-128.yaml"})
)  # fmt: skip
