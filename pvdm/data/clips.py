"""The clip store written by `preprocess` and read by training and evaluation.

Layout of a store directory:

    manifest.parquet        one row per clip (columns: MANIFEST_COLUMNS), in store order: clip i is row i
    shards/<name>.npy       uint8 (N, T, H, W, 3): the N clips of one source video, memory-mapped at read time
    shards/<name>.json      the record that commits the shard (written after the .npy; see pvdm.data.preprocess)
    labels.json             the class names ({"names": [...]}); clip labels are the manifest's `label` column
    report.json, report.md  the data report: what was processed, adjusted, rejected
    validation.json         the great-expectations result

Consecutive clips. Clip j *precedes* clip i when both come from the same source video and
`start_frame(j) + frames * frame_stride == start_frame(i)`: j ends exactly where i begins, with no overlap and no gap
(in source frames). `ClipStore.previous_clip(i)` returns that j, or None for the first clip of a video (or when
clips were cut with gaps between them). The long-video model trains on these (previous, next) pairs.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pvdm.data.layout import LABELS, MANIFEST, MANIFEST_COLUMNS, SHARD_DIR, UNLABELLED

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "SHARD_DIR",
    "ClipDataset",
    "ClipStore",
    "from_model_tensor",
    "to_model_tensor",
]


class ClipStore:
    """Read-only access to a clip store: `store[i]` is clip i as uint8 (T, H, W, 3), memory-mapped from its shard."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a clip store: {MANIFEST} is missing (run `pvdm preprocess`)"
            )
        self.manifest: pd.DataFrame = pd.read_parquet(path)
        if "label" not in self.manifest.columns:  # stores written before labels were part of the contract
            self.manifest["label"] = UNLABELLED
        if "split_source" not in self.manifest.columns:  # ... and before the split's origin was recorded
            self.manifest["split_source"] = "unknown"
        missing = [c for c in MANIFEST_COLUMNS if c not in self.manifest.columns]
        if missing:
            raise ValueError(f"{path}: columns missing: {', '.join(missing)}")
        self._shards: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.manifest)

    def __getstate__(self) -> dict:
        # Pickled into Ray workers: they map the shards themselves instead of receiving copies of the arrays.
        return {**self.__dict__, "_shards": {}}

    @cached_property
    def label_names(self) -> list[str]:
        """Class names (label i is names[i]); [] for an unlabelled store."""
        path = self.root / LABELS
        return list(json.loads(path.read_text())["names"]) if path.is_file() else []

    def labels(self) -> np.ndarray:
        """The class id of every clip, in store order (int64, -1 = unlabelled)."""
        return self.manifest["label"].to_numpy(dtype=np.int64)

    def __getitem__(self, i: int) -> np.ndarray:
        """Clip i as a read-only uint8 (T, H, W, 3) view of its memory-mapped shard."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip {i} out of range for a store of {len(self)} clips")
        row = self.manifest.iloc[i]
        return self._shard(row["shard"])[int(row["shard_row"])]

    def _shard(self, name: str) -> np.ndarray:
        # Opened lazily, so DataLoader workers map the files themselves after fork instead of sharing handles.
        if name not in self._shards:
            self._shards[name] = np.load(self.root / name, mmap_mode="r")
        return self._shards[name]

    @property
    def frames(self) -> int:
        return int(self.manifest["frames"].iloc[0]) if len(self) else 0

    def indices(self, split: str) -> list[int]:
        """Store indices of the clips in `split` ("train" or "test"), in store order."""
        return np.flatnonzero(self.manifest["split"].to_numpy() == split).tolist()

    @cached_property
    def _by_start(self) -> dict[tuple[str, int], int]:
        m = self.manifest
        return {
            (h, int(s)): i for i, (h, s) in enumerate(zip(m["content_hash"], m["start_frame"], strict=True))
        }

    def previous_clip(self, i: int) -> int | None:
        """The clip that ends where clip i starts, in the same source (see the module docstring), or None."""
        row = self.manifest.iloc[i]
        start = int(row["start_frame"]) - int(row["frames"]) * int(row["frame_stride"])
        return self._by_start.get((row["content_hash"], start)) if start >= 0 else None

    def next_clip(self, i: int) -> int | None:
        """The clip that starts where clip i ends, in the same source, or None."""
        row = self.manifest.iloc[i]
        start = int(row["start_frame"]) + int(row["frames"]) * int(row["frame_stride"])
        return self._by_start.get((row["content_hash"], start))

    def pairs(self, split: str) -> list[tuple[int, int]]:
        """(previous, next) index pairs of consecutive clips in `split`: the long-video model's training pairs."""
        out = []
        for i in self.indices(split):
            j = self.previous_clip(i)
            if j is not None:
                out.append((j, i))
        return out


def to_model_tensor(clip: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) in [-1, 1], the layout and range the models take."""
    x = torch.from_numpy(np.array(clip, dtype=np.uint8, copy=True))  # copy: shards are read-only memory maps
    return x.permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def from_model_tensor(x: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3), rounding and clipping (the inverse of to_model_tensor)."""
    y = ((x.detach().float().cpu() + 1.0) * 127.5).round().clamp_(0, 255).to(torch.uint8)
    return y.permute(1, 2, 3, 0).contiguous().numpy()


class ClipDataset(Dataset):
    """The clips of one split as float32 (3, T, H, W) tensors in [-1, 1].

    `self.indices[k]` is the store index of item k, for callers that need the manifest row or the previous clip.
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.store = ClipStore(root)
        self.split = split
        self.indices = self.store.indices(split)
        if not self.indices:
            raise ValueError(f"{root}: no clips in split {split!r}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> torch.Tensor:
        return to_model_tensor(self.store[self.indices[k]])
