"""DVC stage `train_diffusion`: data/latents/ -> data/models/diffusion.pt (EMA weights), metrics, plots.

The model learns p(z) and p(z2 | z1) together (PVDM section 3.3): pairs of consecutive clips come from the
latent store's `previous` column. The denoiser is the family's (`diffusion.denoiser.type`); its latents' spec comes
from the latent store. Runs on Ray Train like the autoencoder stage.

`diffusion.train.init_from` (none | champion | a checkpoint) picks the initial weights (pipelines/warm_start.py);
the run logs the latent store it trains on and the clip store behind it as MLflow dataset inputs.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import mlflow

from pipelines.champion import ChampionError
from pipelines.cluster import ClusterError
from pipelines.ray_train import TrainingError, train_on_ray
from pipelines.stages.common import (
    CLIPS,
    LATENTS,
    METRICS,
    MODELS,
    PLOTS,
    ROOT,
    clip_store_sha256,
    latent_store_sha256,
    run_stage,
    write_curve,
    write_json,
)
from pipelines.stages.models import export_model
from pipelines.tracking import MetricSink, log_dataset_input, stage_run
from pipelines.warm_start import initial_weights, tag_run
from pvdm.config import ConfigError, Params
from pvdm.data.latents import LatentPairDataset
from pvdm.families.registry import denoiser_record, load_diffusion
from pvdm.families.roles import LatentSpec
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import TrainContext
from pvdm.training.warm_start import InitialWeights


def worker_loop(
    params: Params, spec: LatentSpec, init: InitialWeights | None, ctx: TrainContext, root: Path
) -> None:
    """One Ray worker's training on its local copy of the inputs under `root` (never the driver's project)."""
    dataset = LatentPairDataset(root / LATENTS.relative_to(ROOT), "train")
    train_diffusion(params.diffusion, params.runtime, dataset, spec, ctx, root=root, init=init)


def log_datasets() -> None:
    """What the model saw: the latents (the training input) and the clips they encode (the source)."""
    log_dataset_input("latents", LATENTS, latent_store_sha256())
    if (CLIPS / "manifest.parquet").is_file():
        log_dataset_input("clips", CLIPS, clip_store_sha256(), context="source")


def stage_inputs(params: Params, dataset: LatentPairDataset) -> list[str]:
    """What the workers read: the latents, the clips they point at (pixel-space families), the flow weights."""
    inputs = [LATENTS, *([CLIPS] if dataset.store.clips is not None else [])]
    flow = getattr(params.diffusion.denoiser, "flow", None)
    weights = flow.weights_path(ROOT) if flow is not None else None
    if weights is not None and weights.is_relative_to(ROOT):
        inputs.append(weights)
    return [str(p.relative_to(ROOT)) for p in inputs]


def main(params: Params) -> None:
    section = {"diffusion": params.diffusion.model_dump(), "runtime": params.runtime.model_dump()}
    with (
        stage_run("train_diffusion", section, deps=["data/latents"]) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.set_tag("pvdm.family", params.diffusion.denoiser.type)
        dataset = LatentPairDataset(LATENTS, "train")
        current = denoiser_record(params.diffusion, dataset.store.spec)
        init = initial_weights("diffusion", params.diffusion.train, current, ROOT, Path(tmp))
        lineage = tag_run(init)
        log_datasets()
        loop = partial(worker_loop, params, dataset.store.spec, init)
        payload = train_on_ray(
            "train_diffusion", loop, params, log_metrics=MetricSink.for_active_run(run), section=section,
            inputs=stage_inputs(params, dataset), root=ROOT, init_source=init.source.to_dict() if init else None,
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
        export_model(
            payload,
            MODELS / "diffusion.pt",
            load_diffusion(payload).model,
            "pvdm-diffusion",
            version_tags=lineage,
        )


if __name__ == "__main__":
    run_stage(main, expected=(TrainingError, ClusterError, ChampionError, ConfigError))
