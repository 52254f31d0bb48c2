"""A fifth family added as docs/architecture.md says: this folder and a preset, no edit anywhere else.

tests/pvdm/test_family_seam.py puts this folder's parent on `pvdm.families.__path__`, which is what placing the
folder at pvdm/families/toy/ does.
"""

from __future__ import annotations

from pvdm.families.registry import Family, register_autoencoder, register_denoiser, register_family

from .config import ToyAEConfig, ToyDenoiserConfig


def build_autoencoder(cfg: ToyAEConfig, data):  # noqa: ANN001, ANN201
    from .models import ToyAutoencoder

    return ToyAutoencoder(cfg, data)


def build_denoiser(cfg: ToyDenoiserConfig, spec):  # noqa: ANN001, ANN201
    from .models import ToyDenoiser

    return ToyDenoiser(cfg, spec)


register_autoencoder("toy_ae", build_autoencoder)
register_denoiser("toy_denoiser", build_denoiser)
register_family(Family("Toy", "toy_ae", "toy_denoiser", presets={"demo": "tests/pvdm/toy_family/toy.yaml"}))
