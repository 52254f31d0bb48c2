"""Shared fixtures: seeded RNG, the real videos in ../shared (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # before torch loads OpenMP: no busy-waiting on shared cores

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Real servers on loopback for the `services` tests (S3, PostgreSQL, MLflow): see tests/service_fixtures.py.
pytest_plugins = ["tests.service_fixtures"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = PROJECT_ROOT.parent / "shared" / "data" / "videos"


@pytest.fixture
def shared_videos() -> Path:
    """The real test videos; the test is skipped (with the reason) where ../shared is absent."""
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"real test videos not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; on a loaded 2-core machine, two threads spin and run ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU (none present)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
