"""Metric tests convert weights into a private cache so they never touch the user's ~/.cache/pvdm."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_weight_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("PVDM_CACHE_DIR", str(tmp_path_factory.mktemp("pvdm-cache")))
    yield
    mp.undo()
