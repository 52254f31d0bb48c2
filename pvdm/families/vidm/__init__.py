"""The VIDM family (Mei and Patel, AAAI 2023), all in this folder: the config section (`config.py`), the denoiser
role holding both generators (`denoiser.py`), their networks (`frame_unet.py`: the content generator and the frame
UNet; `motion.py`: the motion generator; `parts.py`: PosGN, SpyNet, the truncation constant, the Charbonnier
penalty) and its frame-by-frame sampler (`sampler.py`). Pixel space: it pairs with the identity autoencoder.
"""

from __future__ import annotations

from pvdm.families.registry import Family, register_denoiser, register_family
from pvdm.families.roles import LatentSpec
from pvdm.families.vidm.config import VIDMConfig


def build_vidm(cfg: VIDMConfig, spec: LatentSpec):  # noqa: ANN201 (VIDMDenoiser)
    from pvdm.families.vidm.denoiser import VIDMDenoiser

    return VIDMDenoiser(cfg, spec)


register_denoiser("vidm", build_vidm)
register_family(
    Family(
        "VIDM",
        "identity",
        "vidm",
        order=3,
        presets={"demo": "params/vidm.yaml", "paper": "params/vidm-128.yaml"},
    )
)
