"""DVC stage `train_diffusion`: data/latents/ -> data/models/diffusion.pt (EMA weights), metrics, plots.

The model learns p(z) and p(z2 | z1) together (PVDM section 3.3): pairs of consecutive clips come from the
latent store's `previous` column. Runs on Ray Train like the autoencoder stage.
"""

from __future__ import annotations

from typing import Any

import mlflow

from pipelines.ray_train import RayContext
from pipelines.stages.common import (
    LATENTS,
    METRICS,
    MODELS,
    PLOTS,
    run_stage,
    train_on_ray,
    write_curve,
    write_json,
)
from pipelines.stages.models import export_model
from pipelines.tracking import mlflow_metric_logger, stage_run
from pvdm.config import Params, parse_params
from pvdm.data.latents import LatentPairDataset, LatentStore
from pvdm.training.diffusion import diffusion_from_checkpoint, train_diffusion


def worker(config: dict[str, Any]) -> None:
    params = parse_params(config["params"])
    ctx = RayContext(mlflow_metric_logger(config["tracking_uri"], config["run_id"]), config["torch_threads"])
    dataset = LatentPairDataset(config["latents"], "train")
    train_diffusion(params.diffusion, params.runtime, dataset, dataset.store.shape, ctx)


def main(params: Params) -> None:
    section = {"diffusion": params.diffusion.model_dump(), "runtime": params.runtime.model_dump()}
    with stage_run("train_diffusion", section, deps=["data/latents"]) as run:
        payload = train_on_ray(
            "train_diffusion", worker, params, section, run.info.run_id,
            data={"latents": LATENTS}, run_inputs=[LATENTS / "meta.json", LATENTS / "manifest.parquet"],
        )  # fmt: skip
        history = payload["history"]
        tail = history[-max(1, len(history) // 10) :]
        scores = {
            "steps": payload["step"],
            "final_loss": sum(r["loss"] for r in tail) / len(tail),
            "first_loss": history[0]["loss"],
            "pairs": int((LatentStore(LATENTS).manifest["previous"] >= 0).sum()),
        }
        mlflow.log_metrics({k: float(v) for k, v in scores.items()})
        write_json(METRICS / "diffusion.json", scores)
        write_curve(PLOTS / "diffusion.csv", history)
        export_model(
            payload, MODELS / "diffusion.pt", diffusion_from_checkpoint(payload).model, "pvdm-diffusion"
        )


if __name__ == "__main__":
    run_stage(main)
