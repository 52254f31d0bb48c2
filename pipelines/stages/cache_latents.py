"""DVC stage `cache_latents`: data/clips/ + autoencoder -> data/latents/ (every clip encoded once).

An autoencoder that does not cache (the identity of pixel-space families) gets a manifest pointing at the clips.
With RAY_ADDRESS set, the encoding runs as a Ray task on a worker node (pipelines.cluster.run_heavy).
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from pipelines.cluster import run_heavy
from pipelines.stages.common import CLIPS, LATENTS, MODELS, ROOT, file_sha256, run_stage
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import Params
from pvdm.data.latents import LatentStore, cache_latents
from pvdm.device import resolve_device
from pvdm.families.registry import load_autoencoder

AE = MODELS / "autoencoder.pt"


def encode(inputs: Path, outputs: Path, device_name: str, jitter_windows: int, ae_sha256: str) -> None:
    """Encode the clips under `inputs` with its autoencoder into the latent store under `outputs`."""
    device = resolve_device(device_name)
    model = load_autoencoder(load_checkpoint(inputs / AE.relative_to(ROOT))).to(device)
    cache_latents(
        model, inputs / CLIPS.relative_to(ROOT), outputs / LATENTS.relative_to(ROOT), autoencoder_sha256=ae_sha256,
        device=device, jitter_windows=jitter_windows,
    )  # fmt: skip


def main(params: Params) -> None:
    jitter = params.diffusion.train.jitter_windows
    with stage_run(
        "cache_latents",
        {"runtime.device": params.runtime.device, "diffusion.train.jitter_windows": jitter},
        deps=["data/clips", "data/models/autoencoder.pt"],
    ):
        payload = load_checkpoint(AE)
        mlflow.set_tag("pvdm.family", payload["family"])
        args = (params.runtime.device, jitter, file_sha256(AE))
        if load_autoencoder(payload).caches_latents:  # the work worth a worker: encoding every clip
            rels = [str(p.relative_to(ROOT)) for p in (CLIPS, AE)]
            run_heavy("cache_latents", encode, *args, runtime=params.runtime, root=ROOT, inputs=rels,
                      outputs=[str(LATENTS.relative_to(ROOT))])  # fmt: skip
        else:  # a manifest that points at the clips, written in place: nothing to compute
            encode(ROOT, ROOT, *args)
        store = LatentStore(LATENTS)
        pairs = int((store.manifest["previous"] >= 0).sum())
        windows = int((store.manifest["offset"] > 0).sum())
        mlflow.log_metrics(
            {"latents": float(len(store)), "pairs": float(pairs), "jitter_windows": float(windows)}
        )
        mlflow.log_dict(store.meta, "latent_store_meta.json")


if __name__ == "__main__":
    run_stage(main)
