"""DVC stage `cache_latents`: data/clips/ + autoencoder -> data/latents/ (every clip encoded once).

An autoencoder that does not cache (the identity of pixel-space families) gets a manifest pointing at the clips.
"""

from __future__ import annotations

import mlflow

from pipelines.stages.common import CLIPS, LATENTS, MODELS, file_sha256, run_stage
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import Params
from pvdm.data.latents import cache_latents
from pvdm.device import resolve_device
from pvdm.families.registry import load_autoencoder


def main(params: Params) -> None:
    with stage_run(
        "cache_latents",
        {
            "runtime.device": params.runtime.device,
            "diffusion.train.jitter_windows": params.diffusion.train.jitter_windows,
        },
        deps=["data/clips", "data/models/autoencoder.pt"],
    ):
        device = resolve_device(params.runtime.device)
        payload = load_checkpoint(MODELS / "autoencoder.pt")
        model = load_autoencoder(payload).to(device)
        mlflow.set_tag("pvdm.family", payload["family"])
        store = cache_latents(
            model, CLIPS, LATENTS, autoencoder_sha256=file_sha256(MODELS / "autoencoder.pt"), device=device,
            jitter_windows=params.diffusion.train.jitter_windows,
        )  # fmt: skip
        pairs = int((store.manifest["previous"] >= 0).sum())
        windows = int((store.manifest["offset"] > 0).sum())
        mlflow.log_metrics(
            {"latents": float(len(store)), "pairs": float(pairs), "jitter_windows": float(windows)}
        )
        mlflow.log_dict(store.meta, "latent_store_meta.json")


if __name__ == "__main__":
    run_stage(main)
