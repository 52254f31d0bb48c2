"""The small benchmarks run: one step each at the demo presets' sizes (their numbers are measured by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.long_sampling import LENGTHS, model_for, seconds_per_length
from bench.train_profile import profile_autoencoder, profile_diffusion
from pvdm.config import load_params

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_long_sampling_times_every_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    model = model_for(Path("params.yaml"), torch.device("cpu"))
    times = seconds_per_length(model, Path("params.yaml"), steps=1)
    assert list(times) == list(LENGTHS) and all(t > 0 for t in times.values())


def test_train_profile_names_every_phase() -> None:
    params = load_params(ROOT / "params.yaml")
    ae = profile_autoencoder(params, "none", torch.device("cpu"), steps=1)
    assert set(ae) == {"autoencoder forward", "LPIPS forward", "backward", "optimizer"}
    diffusion = profile_diffusion(params, torch.device("cpu"), steps=1)
    assert set(diffusion) == {"denoiser forward + loss", "backward", "optimizer", "EMA update"}
