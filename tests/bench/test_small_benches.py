"""The small benchmarks run: one step each at the demo presets' sizes (their numbers are measured by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.long_sampling import LENGTHS, model_for, seconds_per_length
from bench.quality_vs_time import frame_motion
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


def test_frame_motion_is_zero_for_a_still_clip_and_counts_each_change() -> None:
    still = torch.zeros(2, 3, 4, 8, 8)
    assert frame_motion(still) == 0.0
    flicker = still.clone()
    flicker[:, :, 1::2] = 1.0  # every step between frames changes by 1 in [-1, 1], i.e. 0.5 in [0, 1] units
    assert frame_motion(flicker) == pytest.approx(0.5)
    # the time average of a moving clip (what a blurred reconstruction settles for) has no motion left
    assert frame_motion(flicker.mean(dim=2, keepdim=True).expand_as(flicker)) == 0.0
