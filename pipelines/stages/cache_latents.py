"""DVC stage `cache_latents`: data/clips/ + autoencoder -> data/latents/ (every clip encoded once).

An autoencoder that does not cache (the identity of pixel-space families) gets a manifest pointing at the clips.
Rows the previous store holds for the same autoencoder checkpoint are copied (data/latents is `persist: true`):
after new videos, only their clips are encoded. With RAY_ADDRESS set, the rows to encode are cut into
`runtime.num_workers` shards, each a Ray task on a worker node (pipelines.cluster.map_heavy); the driver puts the
shards' latents together and writes the store.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from pipelines.cluster import ClusterError, cluster_address, map_heavy, shard_ranges
from pipelines.stages.common import CLIPS, LATENTS, MODELS, ROOT, log, run_stage
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import Params
from pvdm.data.clips import ClipStore
from pvdm.data.latents import (
    LatentStore,
    assemble_latents,
    encode_clip_store,
    latent_manifest,
    reusable_rows,
    write_latent_store,
)
from pvdm.device import resolve_device
from pvdm.families.registry import load_autoencoder
from pvdm.hashing import sha256_file

AE = MODELS / "autoencoder.pt"
BATCH = 8


def encode_rows(inputs: Path, _outputs: Path, rows: list[int], device_name: str, jitter: int) -> np.ndarray:
    """Latents of `rows` of the latent manifest, in that order, from the clips and autoencoder under `inputs`."""
    device = resolve_device(device_name)
    model = load_autoencoder(load_checkpoint(inputs / AE.relative_to(ROOT))).to(device)
    store = ClipStore(inputs / CLIPS.relative_to(ROOT))
    return encode_clip_store(
        model.encode, store, batch_size=BATCH, device=device, manifest=latent_manifest(store, jitter),
        rows=rows,
    )  # fmt: skip


def encode_missing(params: Params, rows: list[int]) -> np.ndarray:
    """The latents of `rows`: here in one piece, or on the cluster in one shard per training worker."""
    shards = shard_ranges(len(rows), params.runtime.num_workers if cluster_address() else 1)
    jitter = params.diffusion.train.jitter_windows
    calls = [(rows[start:stop], params.runtime.device, jitter) for start, stop in shards]
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
        manifest, ae_sha256 = latent_manifest(clips, jitter), sha256_file(AE)
        latents = None  # the identity's: the clips are the latents
        if model.caches_latents:
            reuse = reusable_rows(LATENTS, manifest, model.latent_spec, ae_sha256)
            latents, encoded = assemble_latents(
                manifest, model.latent_spec, reuse, lambda rows: encode_missing(params, rows)
            )
            log.info(
                "cache_latents: %d rows encoded, %d reused from the previous store", encoded, len(reuse.rows)
            )
            mlflow.log_metrics({"latents_encoded": float(encoded), "latents_reused": float(len(reuse.rows))})
        write_latent_store(
            LATENTS, latents, manifest, model.latent_spec, ae_sha256, label_names=clips.label_names,
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
