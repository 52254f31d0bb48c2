"""The proof of the model-family seam: a fifth family is one folder (tests/pvdm/toy_family/toy/: config sections, an
autoencoder and a denoiser of a few layers, their registration) and a preset (toy.yaml), with no edit to any other
file. Placed on pvdm.families' package path, as a folder at pvdm/families/toy/ would be, it is listed with the
families, `pvdm compare` runs its preset by default, its pairing is checked on its latents, and it goes through the
library's public entry points, config to FVD: validation, training, latent caching, sampling (clips and long
videos), evaluation. It runs in a fresh process, so the suite's registries never see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pvdm.config import ConfigError, parse_params

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).parent / "toy_family"


def test_an_unknown_family_type_is_one_line_naming_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        parse_params({"autoencoder": {"model": {"type": "vqgan9d"}}})
    line = str(err.value)
    assert "\n" not in line and "autoencoder.model: unknown type 'vqgan9d'" in line
    assert all(name in line for name in ("identity", "triplane", "vqgan3d"))
    typo = {"diffusion": {"denoiser": {"type": "unet3d", "widht": 8}}}
    with pytest.raises(ConfigError, match=r"^params: diffusion\.denoiser\.widht: unknown key$"):
        parse_params(typo)


def test_the_toy_family_is_one_folder_and_a_preset() -> None:
    files = sorted(
        str(p.relative_to(TOY)) for p in TOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert files == [
        "run_pipeline.py",
        "toy.yaml",
        "toy/__init__.py",
        "toy/build.py",
        "toy/config.py",
        "toy/models.py",
    ]


@pytest.mark.slow
def test_a_new_family_folder_trains_caches_samples_and_evaluates(tmp_path: Path) -> None:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    }
    result = subprocess.run([sys.executable, str(TOY / "run_pipeline.py"), str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["families"] == ["PVDM", "pixel VDM", "3D-VQGAN + VDM", "VIDM", "Toy"]
    assert out["compare_presets"][-1] == "tests/pvdm/toy_family/toy.yaml"
    assert (
        "triplane_unet models packed triplane latents (C, L), not latents (4, 16, 128, 128)"
        in out["pairing_error"]
    )
    assert out["ae_loss"][1] < out["ae_loss"][0]
    assert (out["ae_family"], out["ae_class"], out["denoiser_class"]) == (
        "toy_ae",
        "ToyAutoencoder",
        "ToyDenoiser",
    )
    assert out["latents_shape"][1:] == [3, 8, 8, 8] and out["spec_matches_config"]
    assert out["x0_bound"] is None  # unbounded latents: no clip
    assert out["sample_shapes"] == [[3, 3, 8, 16, 16], [2, 3, 20, 16, 16]]
    assert out["metrics_finite"] and out["n_fake"] == 3 and out["has_fvd_long"]
