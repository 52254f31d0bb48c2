"""DVC stage `cache_latents`: data/clips/ + autoencoder -> data/latents/ (every clip encoded once).

An autoencoder that does not cache (the identity of pixel-space families) gets a manifest pointing at the clips.
With RAY_ADDRESS set, the encoding is cut into `runtime.num_workers` shards of consecutive rows, each a Ray task on
a worker node (pipelines.cluster.map_heavy); the driver puts the shards' latents together and writes the store.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from pipelines.cluster import ClusterError, cluster_address, map_heavy, shard_ranges
from pipelines.stages.common import CLIPS, LATENTS, MODELS, ROOT, run_stage
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import Params
from pvdm.data.clips import ClipStore
from pvdm.data.latents import LatentStore, encode_clip_store, latent_manifest, write_latent_store
from pvdm.device import resolve_device
from pvdm.families.registry import load_autoencoder
from pvdm.hashing import sha256_file

AE = MODELS / "autoencoder.pt"
BATCH = 8


def encode_rows(
    inputs: Path, _outputs: Path, rows: tuple[int, int], device_name: str, jitter: int
) -> np.ndarray:
    """Latents of rows [start, stop) of the latent manifest, from the clips and autoencoder under `inputs`."""
    device = resolve_device(device_name)
    model = load_autoencoder(load_checkpoint(inputs / AE.relative_to(ROOT))).to(device)
    store = ClipStore(inputs / CLIPS.relative_to(ROOT))
    return encode_clip_store(
        model.encode, store, batch_size=BATCH, device=device, manifest=latent_manifest(store, jitter),
        rows=range(*rows),
    )  # fmt: skip


def encode_all(params: Params, rows: int) -> np.ndarray:
    """Every row encoded: here in one piece, or on the cluster in one shard per training worker."""
    shards = shard_ranges(rows, params.runtime.num_workers if cluster_address() else 1)
    calls = [(shard, params.runtime.device, params.diffusion.train.jitter_windows) for shard in shards]
    inputs = [str(p.relative_to(ROOT)) for p in (CLIPS, AE)]
    parts = map_heavy("cache_latents", encode_rows, calls, runtime=params.runtime, root=ROOT, inputs=inputs)
    return np.concatenate(parts)


def main(params: Params) -> None:
    jitter = params.diffusion.train.jitter_windows
    with stage_run(
        "cache_latents",
        {"runtime.device": params.runtime.device, "diffusion.train.jitter_windows": jitter},
        deps=["data/clips", "data/models/autoencoder.pt"],
    ):
        payload = load_checkpoint(AE)
        model = load_autoencoder(payload)
        mlflow.set_tag("pvdm.family", payload["family"])
        clips = ClipStore(CLIPS)
        manifest = latent_manifest(clips, jitter)
        latents = (
            encode_all(params, len(manifest)) if model.caches_latents else None
        )  # None: the clips are it
        write_latent_store(
            LATENTS, latents, manifest, model.latent_spec, sha256_file(AE), label_names=clips.label_names,
            clips=None if model.caches_latents else CLIPS,
        )  # fmt: skip
        store = LatentStore(LATENTS)
        pairs = int((store.manifest["previous"] >= 0).sum())
        windows = int((store.manifest["offset"] > 0).sum())
        mlflow.log_metrics(
            {"latents": float(len(store)), "pairs": float(pairs), "jitter_windows": float(windows)}
        )
        mlflow.log_dict(store.meta, "latent_store_meta.json")


if __name__ == "__main__":
    run_stage(main, expected=(ClusterError,))
