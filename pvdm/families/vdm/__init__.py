"""The video diffusion model family (Ho et al. 2022): the factorised space-time 3D UNet denoiser `unet3d`.

With the identity autoencoder it is the pixel-space VDM baseline of the PVDM paper's Table 5 ("pixel VDM"); it also
models any (C, T, H, W) latent grid (the 3D-VQGAN family). Config section: `config.py`; network:
pvdm.models.unet3d (shared with the 3D-VQGAN family).
"""

from __future__ import annotations

from pvdm.families.registry import Family, register_denoiser, register_family
from pvdm.families.roles import LatentSpec
from pvdm.families.vdm.config import UNet3DConfig


def build_unet3d(cfg: UNet3DConfig, spec: LatentSpec):  # noqa: ANN201 (UNet3D)
    from pvdm.models.unet3d import UNet3D

    return UNet3D(cfg, spec)


register_denoiser("unet3d", build_unet3d)
register_family(
    Family("pixel VDM", "identity", "unet3d", order=1,
           presets={"demo": "params/vdm.yaml", "paper": "params/vdm-256.yaml"})
)  # fmt: skip
