"""Atomic, safely loadable checkpoints.

Writing goes through pvdm.atomic (a temporary file in the same folder, fsynced, renamed over the target, the
folder fsynced): a kill or a power cut at any moment leaves either the previous checkpoint or the new one, never
a torn file. Loading uses weights_only=True, so a checkpoint can hold tensors and plain Python containers only
(no pickled code).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm.atomic import atomic_write
from pvdm.errors import CheckpointError  # defined there so that naming it loads no torch

CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    with atomic_write(path) as f:  # durable: the file and the rename are fsynced
        torch.save(payload, f)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err


def step_checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint with the highest step in `folder` (temporary files are ignored), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
    return max(found)[1] if found else None


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states in weights_only-loadable form (tensors, lists, ints).

    CUDA: the current device's generator only. A worker uses one GPU; saving every visible GPU's state made a
    checkpoint of an 8-GPU node unloadable on a 1-GPU node."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": list(_listify(random.getstate())),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # the current device takes the first saved state (older checkpoints saved one per visible GPU)
        torch.cuda.set_rng_state(state["cuda"][0])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, tuple) else value
