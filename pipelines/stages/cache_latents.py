"""DVC stage `cache_latents`: data/clips/ + autoencoder -> data/latents/ (every clip encoded once, float16)."""

from __future__ import annotations

import mlflow

from pipelines.stages.common import CLIPS, LATENTS, MODELS, file_sha256, run_stage
from pipelines.tracking import stage_run
from pvdm.config import Params
from pvdm.data.clips import ClipStore
from pvdm.data.latents import encode_clip_store, write_latent_store
from pvdm.training.autoencoder import autoencoder_from_checkpoint
from pvdm.training.checkpoint import load_checkpoint
from pvdm.training.precision import resolve_device


def main(params: Params) -> None:
    with stage_run(
        "cache_latents",
        {"runtime.device": params.runtime.device},
        deps=["data/clips", "data/models/autoencoder.pt"],
    ):
        device = resolve_device(params.runtime.device)
        model = autoencoder_from_checkpoint(load_checkpoint(MODELS / "autoencoder.pt")).to(device)
        store = ClipStore(CLIPS)
        latents, manifest = encode_clip_store(model.encode_packed, store, batch_size=8, device=device)
        write_latent_store(
            LATENTS, latents, manifest, model.latent_shape, file_sha256(MODELS / "autoencoder.pt")
        )
        mlflow.log_metrics(
            {
                "latents": float(len(latents)),
                "latent_positions": float(model.latent_shape.length),
                "pairs": float((manifest["previous"] >= 0).sum()),
                "latent_abs_mean": float(abs(latents.astype("float32")).mean()),
            }
        )


if __name__ == "__main__":
    run_stage(main)
