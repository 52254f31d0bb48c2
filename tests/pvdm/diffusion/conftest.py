import pytest


@pytest.fixture(autouse=True)
def _tiny_models(one_thread) -> None:
    """Every test here runs tiny models: one thread (see tests/conftest.py)."""
