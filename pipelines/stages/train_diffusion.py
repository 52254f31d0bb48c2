"""DVC stage `train_diffusion`: data/latents/ -> data/models/diffusion.pt (EMA weights), metrics, plots.

The model learns p(z) and p(z2 | z1) together (PVDM section 3.3): pairs of consecutive clips come from the
latent store's `previous` column. The denoiser is the family's (`diffusion.denoiser.type`); its latents' spec comes
from the latent store. Runs on Ray Train like the autoencoder stage.
"""

from __future__ import annotations

from functools import partial

import mlflow

from pipelines.ray_train import TrainingError, train_on_ray
from pipelines.stages.common import LATENTS, METRICS, MODELS, PLOTS, ROOT, run_stage, write_curve, write_json
from pipelines.stages.models import export_model
from pipelines.tracking import MetricSink, stage_run
from pvdm.config import Params
from pvdm.data.latents import LatentPairDataset
from pvdm.families.registry import load_diffusion
from pvdm.training.diffusion import train_diffusion


def main(params: Params) -> None:
    section = {"diffusion": params.diffusion.model_dump(), "runtime": params.runtime.model_dump()}
    with stage_run("train_diffusion", section, deps=["data/latents"]) as run:
        mlflow.set_tag("pvdm.family", params.diffusion.denoiser.type)
        dataset = LatentPairDataset(LATENTS, "train")
        loop = partial(
            train_diffusion, params.diffusion, params.runtime, dataset, dataset.store.spec, root=ROOT
        )
        payload = train_on_ray(
            "train_diffusion", loop, params, log_metrics=MetricSink.for_active_run(run), section=section,
            run_inputs=[LATENTS / "meta.json", LATENTS / "manifest.parquet"], root=ROOT,
        )  # fmt: skip
        history = payload["history"]
        tail = history[-max(1, len(history) // 10) :]
        scores = {
            "steps": payload["step"],
            "final_loss": sum(r["loss"] for r in tail) / len(tail),
            "first_loss": history[0]["loss"],
            "pairs": int((dataset.store.manifest["previous"] >= 0).sum()),
        }
        mlflow.log_metrics({k: float(v) for k, v in scores.items()})
        write_json(METRICS / "diffusion.json", scores)
        write_curve(PLOTS / "diffusion.csv", history)
        export_model(payload, MODELS / "diffusion.pt", load_diffusion(payload).model, "pvdm-diffusion")


if __name__ == "__main__":
    run_stage(main, expected=(TrainingError,))
