"""The toy family's builders (loaded by pvdm.families.registry when a model is built)."""

from __future__ import annotations

from pvdm.families.registry import register_autoencoder, register_denoiser

from .config import ToyAEConfig, ToyDenoiserConfig


def build_autoencoder(cfg: ToyAEConfig, data):  # noqa: ANN001, ANN201
    from .models import ToyAutoencoder

    return ToyAutoencoder(cfg, data)


def build_denoiser(cfg: ToyDenoiserConfig, spec):  # noqa: ANN001, ANN201
    from .models import ToyDenoiser

    return ToyDenoiser(cfg, spec)


register_autoencoder("toy_ae", build_autoencoder)
register_denoiser("toy_denoiser", build_denoiser)
