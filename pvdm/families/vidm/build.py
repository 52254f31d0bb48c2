"""The vidm folder's builders: what building or loading one of its models imports (pvdm.families.registry)."""

from __future__ import annotations

from pvdm.families.registry import register_denoiser
from pvdm.families.roles import LatentSpec
from pvdm.families.vidm.config import VIDMConfig


def build_vidm(cfg: VIDMConfig, spec: LatentSpec):  # noqa: ANN201 (VIDMDenoiser)
    from pvdm.families.vidm.denoiser import VIDMDenoiser

    return VIDMDenoiser(cfg, spec)


register_denoiser("vidm", build_vidm)
