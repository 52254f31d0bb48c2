"""DVC stage `train_autoencoder`: data/clips/ -> data/models/autoencoder.pt, metrics/autoencoder.json, plots.

Trainable families train on Ray Train (runtime.num_workers workers; rank 0 streams the loss curve to MLflow),
then the library scores reconstructions of held-out clips. The identity family has nothing to train: its
checkpoint records the family and its config, and no Ray is started.

`autoencoder.train.init_from` (none | champion | a checkpoint) picks the initial weights (pipelines/warm_start.py);
the run logs the clip store as its MLflow dataset input and where its weights came from as tags.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import mlflow

from pipelines.stages.common import (
    CLIPS,
    METRICS,
    MODELS,
    PLOTS,
    REPORTS,
    ROOT,
    clip_store_sha256,
    run_stage,
    write_curve,
    write_json,
)
from pipelines.stages.models import export_model
from pipelines.tracking import MetricSink, log_dataset_input, stage_run
from pipelines.warm_start import initial_weights, tag_run
from pvdm.config import Params
from pvdm.data.clips import ClipDataset, ClipStore
from pvdm.data.video import write_gif
from pvdm.evaluation import validate_autoencoder
from pvdm.families.registry import autoencoder_record, build_autoencoder, load_autoencoder
from pvdm.training.loop import TrainContext
from pvdm.training.warm_start import InitialWeights


def worker_loop(params: Params, init: InitialWeights | None, ctx: TrainContext, root: Path) -> None:
    """One Ray worker's training: the clips under `root`, its local copy of the inputs (never the driver's)."""
    from pvdm.training.autoencoder import train_autoencoder

    dataset = ClipDataset(root / CLIPS.relative_to(ROOT), "train")
    train_autoencoder(params.autoencoder, params.data, params.runtime, dataset, ctx, init=init)


def train(params: Params, run: mlflow.ActiveRun, section: dict, init: InitialWeights | None) -> dict:
    """The trained checkpoint payload: on Ray for trainable families, a config-only record for the identity."""
    if not build_autoencoder(params.autoencoder, params.data).trainable:
        return autoencoder_record(params.autoencoder, params.data) | {"step": 0, "model": {}, "history": []}
    from pipelines.ray_train import train_on_ray  # only a trainable family starts Ray

    return train_on_ray(
        "train_autoencoder", partial(worker_loop, params, init), params, log_metrics=MetricSink.for_active_run(run),
        section=section, inputs=[str(CLIPS.relative_to(ROOT))], root=ROOT,
        init_source=init.source.to_dict() if init else None,
    )  # fmt: skip


def warm_start(params: Params, dst: Path) -> InitialWeights | None:
    """`autoencoder.train.init_from` resolved (trainable families only: the identity has no weights to start)."""
    if not build_autoencoder(params.autoencoder, params.data).trainable:
        return None
    current = autoencoder_record(params.autoencoder, params.data)
    return initial_weights("autoencoder", params.autoencoder.train, current, ROOT, dst)


def main(params: Params) -> None:
    section = {
        "data": params.data.model_dump(),
        "autoencoder": params.autoencoder.model_dump(),
        "runtime": params.runtime.model_dump(),
    }
    with (
        stage_run("train_autoencoder", section, deps=["data/clips"]) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        init = warm_start(params, Path(tmp))
        lineage = tag_run(init)
        log_dataset_input("clips", CLIPS, clip_store_sha256())
        payload = train(params, run, section, init)
        model = load_autoencoder(payload)
        store = ClipStore(CLIPS)
        split = "test" if store.indices("test") else "train"  # tiny datasets may have no test split
        held_out = [store[i] for i in store.indices(split)]
        scores, grid = validate_autoencoder(model, held_out, params.autoencoder.validation)
        history = payload["history"]
        scores |= {"steps": payload["step"]} | ({"final_loss": history[-1]["loss"]} if history else {})
        mlflow.log_metrics({k: float(v) for k, v in scores.items()})
        mlflow.set_tag("pvdm.family", params.autoencoder.model.type)
        write_json(
            METRICS / "autoencoder.json",
            scores | {"val_split": split, "family": params.autoencoder.model.type},
        )
        write_curve(PLOTS / "autoencoder.csv", history)
        grid_path = write_gif(REPORTS / "recon_grid.gif", grid, fps=8)
        mlflow.log_artifact(str(grid_path), artifact_path="reconstructions")
        export_model(payload, MODELS / "autoencoder.pt", model, "pvdm-autoencoder", version_tags=lineage)


if __name__ == "__main__":
    from pipelines.champion import ChampionError
    from pipelines.cluster import ClusterError
    from pipelines.ray_train import TrainingError
    from pvdm.config import ConfigError

    run_stage(main, expected=(TrainingError, ClusterError, ChampionError, ConfigError))
