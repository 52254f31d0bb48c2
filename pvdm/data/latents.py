"""The latent store written by `cache_latents` and read by diffusion training.

Every clip is encoded once (the official code re-encoded every batch). Layout of a store directory:

    latents.npy      float16 (N, C, L): packed triplane latents (pvdm.models.latent), row i = clip i of the clip store
    manifest.parquet clip_id, split, previous (row of the clip that precedes it in the same video, -1 if none)
    meta.json        latent shape (channels, frames, height, width) and the autoencoder checkpoint's SHA-256
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pvdm.data.clips import ClipStore, to_model_tensor
from pvdm.models.latent import LatentShape


def write_latent_store(
    root: str | Path,
    latents: np.ndarray,
    manifest: pd.DataFrame,
    shape: LatentShape,
    autoencoder_sha256: str,
) -> Path:
    """Write the store into a temporary sibling folder and rename it into place (atomic for readers)."""
    root = Path(root)
    if latents.shape[1:] != shape.packed_shape or len(manifest) != len(latents):
        raise ValueError(f"latents {latents.shape} do not match {shape} and {len(manifest)} manifest rows")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    np.save(tmp / "latents.npy", latents.astype(np.float16))
    manifest[["clip_id", "split", "previous"]].to_parquet(tmp / "manifest.parquet", index=False)
    meta = {"shape": asdict(shape), "autoencoder_sha256": autoencoder_sha256, "count": len(latents)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root


class LatentStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "meta.json").is_file():
            raise FileNotFoundError(
                f"{self.root} is not a latent store: meta.json is missing (run cache_latents)"
            )
        self.meta = json.loads((self.root / "meta.json").read_text())
        self.shape = LatentShape(**self.meta["shape"])
        self.latents = np.load(self.root / "latents.npy", mmap_mode="r")
        self.manifest = pd.read_parquet(self.root / "manifest.parquet")

    def __len__(self) -> int:
        return len(self.latents)

    def indices(self, split: str) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.manifest["split"].to_numpy() == split)]


class LatentPairDataset(Dataset):
    """Item k of a split: (z, z_prev, has_prev) as float32 (C, L), (C, L), bool.

    z_prev is the previous clip's clean latent (zeros when the clip opens its video): the condition of the
    joint p(x) / p(x2 | x1) objective.
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.store = LatentStore(root)
        self.indices = self.store.indices(split)
        if not self.indices:
            raise ValueError(f"{root}: no latents in split {split!r}")
        self.previous = self.store.manifest["previous"].to_numpy()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        i = self.indices[k]
        z = torch.from_numpy(np.array(self.store.latents[i], dtype=np.float32))
        j = int(self.previous[i])
        if j < 0:
            return z, torch.zeros_like(z), False
        return z, torch.from_numpy(np.array(self.store.latents[j], dtype=np.float32)), True


@torch.no_grad()
def encode_clip_store(
    encode: Callable[[torch.Tensor], torch.Tensor],
    store: ClipStore,
    *,
    batch_size: int,
    device: torch.device,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Encode every clip once: (packed latents float16 (N, C, L), manifest with split and previous row)."""
    out = []
    for start in tqdm(range(0, len(store), batch_size), desc="cache_latents", disable=not progress):
        batch = torch.stack(
            [to_model_tensor(store[i]) for i in range(start, min(start + batch_size, len(store)))]
        )
        out.append(encode(batch.to(device)).float().cpu().numpy().astype(np.float16))
    previous = [store.previous_clip(i) for i in range(len(store))]
    manifest = pd.DataFrame(
        {
            "clip_id": store.manifest["clip_id"].to_numpy(),
            "split": store.manifest["split"].to_numpy(),
            "previous": [-1 if p is None else p for p in previous],
        }
    )
    return np.concatenate(out), manifest
