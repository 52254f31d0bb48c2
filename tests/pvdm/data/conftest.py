"""Fixtures shared by the data tests: a tiny clip geometry, a folder of synthetic videos and its clip store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.preprocess import run_preprocess
from pvdm.data.report import PreprocessReport
from pvdm.data.synthetic import generate_videos

TINY = DataConfig(resolution=32, frames=8)
SYNTH_FRAMES = 40  # 5 back-to-back clips of 8 frames per video


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 32x32 videos of 40 frames (read-only for the tests: copy before changing it)."""
    root = tmp_path_factory.mktemp("synthetic_raw")
    generate_videos(root, 6, size=32, frames=SYNTH_FRAMES, fps=12.0, seed=3)
    return root


@pytest.fixture(scope="session")
def synthetic_store(
    synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PreprocessReport]:
    out = tmp_path_factory.mktemp("synthetic_store")
    report = run_preprocess(
        synthetic_raw, out, TINY, PreprocessConfig(test_fraction=0.3, workers=2), progress=False
    )
    return out, report
