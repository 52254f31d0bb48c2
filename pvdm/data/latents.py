"""The latent store written by `cache_latents` and read by diffusion training.

Every clip is encoded once (the official code re-encoded every batch). Layout of a store directory:

    latents.npy      (N + W, *spec.shape) in spec.dtype: row i < N = clip i of the clip store, then W jittered
                     windows (absent for `clips` storage)
    manifest.parquet clip_id, split, previous (row of the clip that precedes it in the same video, -1 if none),
                     label (class id, -1 = unlabelled), window_of and offset (below; -1 and 0 for a clip), key
                     (what the row encodes: see `row_keys`)
    meta.json        the LatentSpec, `storage` ('array' or 'clips'), the clip store's path for 'clips' storage,
                     the label names, and the autoencoder checkpoint's SHA-256

`clips` storage is the identity autoencoder's (pixel-space families): latent i is clip i of the clip store, so the
store holds a manifest and no copy of the data.

Temporal jitter (`diffusion.train.jitter_windows` = J > 0). The official PVDM training draws most of its targets as a
clip-long window starting anywhere inside two consecutive clips, not only on the clip grid. Latents are cached, so
the windows are too: for every pair of consecutive clips (a, b), J windows starting at evenly spaced frames o of a
(frames a[o:] then b[:o]) are encoded and appended as rows with `window_of` = b and `offset` = o. They are
unconditional training targets (previous -1), in the pair's split and class. With `clips` storage a window is put
together from the two clips when it is read.

Incremental. When the store being replaced was written by the same autoencoder (checkpoint SHA-256) with the same
LatentSpec, every row whose key it holds is copied from it and only the other rows are encoded: after new videos
arrive, cache_latents encodes the new videos' clips only (`data/latents` is `persist: true` in dvc.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pvdm.data.clips import ClipStore, to_model_tensor
from pvdm.families.roles import LatentSpec, VideoAutoencoder

MANIFEST_COLUMNS = ["clip_id", "split", "previous", "label", "window_of", "offset"]
KEY = "key"  # optional column (stores written before incremental caching have none)


def write_latent_store(
    root: str | Path,
    latents: np.ndarray | None,
    manifest: pd.DataFrame,
    spec: LatentSpec,
    autoencoder_sha256: str,
    *,
    label_names: list[str] | None = None,
    clips: str | Path | None = None,
) -> Path:
    """Write the store into a temporary sibling folder and rename it into place (atomic for readers).

    latents None means `clips` storage: `clips` is the clip store whose clips are the latents."""
    root = Path(root)
    if (latents is None) == (clips is None):
        raise ValueError("give either the latents array or the clip store they are (identity), not both")
    if latents is not None and (latents.shape[1:] != spec.shape or len(manifest) != len(latents)):
        raise ValueError(
            f"latents {latents.shape} do not match {spec.shape} and {len(manifest)} manifest rows"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    meta = {
        "spec": spec.to_dict(),
        "storage": "array" if latents is not None else "clips",
        "count": len(manifest),
        "label_names": list(label_names or []),
        "autoencoder_sha256": autoencoder_sha256,
    }
    if latents is not None:
        np.save(tmp / "latents.npy", latents.astype(spec.dtype))
    else:
        meta["clips"] = os.path.relpath(
            Path(clips).resolve(), root.resolve()
        )  # relative: the project can move
    manifest = manifest.assign(**{c: d for c, d in (("window_of", -1), ("offset", 0)) if c not in manifest})
    columns = MANIFEST_COLUMNS + ([KEY] if KEY in manifest else [])
    manifest[columns].to_parquet(tmp / "manifest.parquet", index=False)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    swap_in(tmp, root)
    return root


def swap_in(new: Path, root: Path) -> None:
    """Put the folder `new` at `root`: the old store is renamed aside, the new one renamed in, the old deleted.
    Each rename is atomic; a kill between them leaves the old store aside, and the next write (or this one's
    start, see remove_leftovers) deletes whatever a killed write left."""
    if root.exists():
        aside = root.with_name(f".{root.name}.old-{os.getpid()}")
        os.replace(root, aside)
        os.replace(new, root)
        shutil.rmtree(aside)
    else:
        os.replace(new, root)


def remove_leftovers(root: Path) -> None:
    """Temporary and set-aside folders of writes that were killed (`.<name>.*` beside the store)."""
    for path in root.parent.glob(f".{root.name}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


class LatentStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "meta.json").is_file():
            raise FileNotFoundError(
                f"{self.root} is not a latent store: meta.json is missing (run cache_latents)"
            )
        self.meta = json.loads((self.root / "meta.json").read_text())
        if "spec" not in self.meta:
            raise ValueError(
                f"{self.root}: written by an older pvdm (no latent spec): run cache_latents again"
            )
        self.spec = LatentSpec.from_dict(self.meta["spec"])
        self.label_names: list[str] = list(self.meta.get("label_names", []))
        self.manifest = pd.read_parquet(self.root / "manifest.parquet")
        for column, default in (("window_of", -1), ("offset", 0)):  # stores written before temporal jitter
            if column not in self.manifest.columns:
                self.manifest[column] = default
        self._window_of = self.manifest["window_of"].to_numpy()
        self._offset = self.manifest["offset"].to_numpy()
        self._previous = self.manifest["previous"].to_numpy()
        if self.meta["storage"] == "clips":
            self.clips: ClipStore | None = ClipStore(self.root / self.meta["clips"])
            self.latents = None
        else:
            self.clips = None
            self.latents = np.load(self.root / "latents.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.manifest)

    def latent(self, i: int) -> torch.Tensor:
        """Latent i as float32 (*spec.shape)."""
        if self.clips is not None:
            if self._offset[i]:
                b = int(self._window_of[i])
                return to_model_tensor(window(self.clips, int(self._previous[b]), b, int(self._offset[i])))
            return to_model_tensor(self.clips[i])
        return torch.from_numpy(np.array(self.latents[i], dtype=np.float32))

    def indices(self, split: str) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.manifest["split"].to_numpy() == split)]

    def __getstate__(self) -> dict:
        # Shipped to Ray workers: they map the files themselves instead of pickling the arrays.
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])


class LatentPairDataset(Dataset):
    """Item k of a split: (z, z_prev, has_prev, label) as float32 latent, float32 latent, bool, int.

    z_prev is the previous clip's clean latent (zeros when the clip opens its video): the condition of the
    joint p(x) / p(x2 | x1) objective. label is the clip's class id (-1: unlabelled).
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.store = LatentStore(root)
        self.indices = self.store.indices(split)
        if not self.indices:
            raise ValueError(f"{root}: no latents in split {split!r}")
        self.previous = self.store.manifest["previous"].to_numpy()
        self.labels = self.store.manifest["label"].to_numpy()
        self.label_names = self.store.label_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, bool, int]:
        i = self.indices[k]
        z, j, label = self.store.latent(i), int(self.previous[i]), int(self.labels[i])
        if j < 0:
            return z, torch.zeros_like(z), False, label
        return z, self.store.latent(j), True, label


def latent_manifest(store: ClipStore, jitter_windows: int = 0) -> pd.DataFrame:
    """The latent store's manifest: one row per clip, in clip-store order, then the jittered windows."""
    previous = [store.previous_clip(i) for i in range(len(store))]
    clips = pd.DataFrame(
        {
            "clip_id": store.manifest["clip_id"].to_numpy(),
            "split": store.manifest["split"].to_numpy(),
            "previous": [-1 if p is None else p for p in previous],
            "label": store.labels(),
            "window_of": -1,
            "offset": 0,
        }
    )
    offsets = jitter_offsets(store.frames, jitter_windows)
    windows = [
        {"clip_id": f"{row.clip_id}@-{store.frames - o}", "split": row.split, "previous": -1, "label": row.label,
         "window_of": b, "offset": o}
        for b, row in enumerate(clips.itertuples()) if row.previous >= 0 for o in offsets
    ]  # fmt: skip
    manifest = pd.concat([clips, pd.DataFrame(windows, columns=clips.columns)], ignore_index=True)
    return manifest.assign(**{KEY: row_keys(store, manifest)})


def row_keys(store: ClipStore, manifest: pd.DataFrame) -> list[str]:
    """What each latent row encodes, as a key naming its pixels: a clip is its shard (named by the video's content
    hash and the cutting rules' fingerprint) and its row there; a window is its second clip's key and its offset
    (the first clip is the one before it in the same shard)."""
    clips = [
        f"{shard}#{row}"
        for shard, row in zip(store.manifest["shard"], store.manifest["shard_row"], strict=True)
    ]
    window_of, offset = manifest["window_of"].to_numpy(), manifest["offset"].to_numpy()
    return [
        clips[i] if not offset[i] else f"{clips[int(window_of[i])]}@{int(offset[i])}"
        for i in range(len(manifest))
    ]


@dataclass(frozen=True)
class Reuse:
    """Rows of a new latent manifest that an existing store already holds: `rows` (new) <- `source` (old)."""

    rows: np.ndarray
    source: np.ndarray
    latents: np.ndarray | None  # the old store's latents (memory-mapped), None when nothing is reused

    @classmethod
    def nothing(cls) -> Reuse:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), None)


def reusable_rows(
    root: str | Path, manifest: pd.DataFrame, spec: LatentSpec, autoencoder_sha256: str
) -> Reuse:
    """What the store at `root` can give the new manifest: the rows with the same key, if the store was written by
    the same autoencoder checkpoint with the same spec (anything else, or no store: nothing)."""
    try:
        old = LatentStore(root)
    except (OSError, ValueError):
        return Reuse.nothing()
    same_model = (
        old.meta.get("autoencoder_sha256") == autoencoder_sha256 and old.meta["spec"] == spec.to_dict()
    )
    if old.latents is None or not same_model or KEY not in old.manifest or KEY not in manifest:
        return Reuse.nothing()
    where = {key: i for i, key in enumerate(old.manifest[KEY])}
    pairs = [(i, where[key]) for i, key in enumerate(manifest[KEY]) if key in where]
    if not pairs:
        return Reuse.nothing()
    rows, source = (np.array(column, dtype=np.int64) for column in zip(*pairs, strict=True))
    return Reuse(rows, source, old.latents)


def assemble_latents(
    manifest: pd.DataFrame,
    spec: LatentSpec,
    reuse: Reuse,
    encode_rows: Callable[[list[int]], np.ndarray],
) -> tuple[np.ndarray, int]:
    """(latents of every manifest row, how many were encoded): reused rows copied, the others from
    `encode_rows(rows)`, which returns their latents in the order given."""
    latents = np.empty((len(manifest), *spec.shape), dtype=np.float32)
    if reuse.latents is not None:
        latents[reuse.rows] = reuse.latents[reuse.source]
    todo = np.setdiff1d(np.arange(len(manifest)), reuse.rows).tolist()
    if todo:
        latents[todo] = encode_rows(todo)
    return latents, len(todo)


def jitter_offsets(frames: int, windows: int) -> list[int]:
    """`windows` start frames evenly spaced strictly inside a clip of `frames` frames (all of 1..frames-1 at most)."""
    return sorted({min(frames - 1, max(1, round((k + 1) * frames / (windows + 1)))) for k in range(windows)})


def window(clips: ClipStore, a: int, b: int, offset: int) -> np.ndarray:
    """The clip-long window starting at frame `offset` of clip a and running into the clip b that follows it."""
    return np.concatenate([clips[a][offset:], clips[b][:offset]])


@torch.no_grad()
def encode_clip_store(
    encode: Callable[[torch.Tensor], torch.Tensor],
    store: ClipStore,
    *,
    batch_size: int,
    device: torch.device,
    progress: bool = True,
    manifest: pd.DataFrame | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """Encode every row of `manifest` once (default: every clip), or only `rows` of it (new clips, or one shard of
    the work): latents float32 (len(rows), *latent shape), in the order of `rows`. A jittered window row is put
    together from its two clips."""
    manifest = manifest if manifest is not None else latent_manifest(store)
    rows = list(rows) if rows is not None else list(range(len(manifest)))
    previous, window_of, offset = (manifest[c].to_numpy() for c in ("previous", "window_of", "offset"))

    def pixels(i: int) -> np.ndarray:
        if offset[i]:
            b = int(window_of[i])
            return window(store, int(previous[b]), b, int(offset[i]))
        return store[i]

    out = []
    for start in tqdm(range(0, len(rows), batch_size), desc="cache_latents", disable=not progress):
        batch = torch.stack([to_model_tensor(pixels(i)) for i in rows[start : start + batch_size]])
        out.append(encode(batch.to(device)).float().cpu().numpy())
    return np.concatenate(out)


def cache_latents(
    autoencoder: VideoAutoencoder,
    clips: str | Path,
    root: str | Path,
    *,
    autoencoder_sha256: str,
    batch_size: int = 8,
    device: torch.device | None = None,
    progress: bool = True,
    jitter_windows: int = 0,
) -> LatentStore:
    """The `cache_latents` stage: encode the clip store once into a latent store (or, for an autoencoder that
    does not cache, e.g. the identity, write a manifest pointing at the clips), with `jitter_windows` windows
    between each pair of consecutive clips (module docstring). Rows the store at `root` already holds for the
    same autoencoder are copied, not encoded again."""
    store = ClipStore(clips)
    spec, manifest = autoencoder.latent_spec, latent_manifest(store, jitter_windows)
    latents = None
    if autoencoder.caches_latents:
        device = device or next(autoencoder.parameters()).device

        def encode_rows(rows: list[int]) -> np.ndarray:
            return encode_clip_store(autoencoder.encode, store, batch_size=batch_size, device=device,
                                     progress=progress, manifest=manifest, rows=rows)  # fmt: skip

        reuse = reusable_rows(root, manifest, spec, autoencoder_sha256)
        latents, _ = assemble_latents(manifest, spec, reuse, encode_rows)
    write_latent_store(
        root, latents, manifest, spec, autoencoder_sha256,
        label_names=store.label_names, clips=None if autoencoder.caches_latents else clips,
    )  # fmt: skip
    return LatentStore(root)
