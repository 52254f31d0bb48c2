"""Issue 28's test: a pipeline run, then new videos, then a retrain: the evaluation set and eval_set_sha256 are
unchanged, the champion is scored again on it (reproducing its own score), and a challenger that is a copy of the
champion's weights is never promoted. Tiny DVC project, the project's SQLite MLflow store, no Prefect."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipelines import promotion, rescoring
from pipelines.champion import champion_version, download_checkpoint
from pipelines.config import load_pipeline_params
from pipelines.stages.evaluate import FEATURES_ARTIFACT
from pvdm.data.synthetic import generate_videos
from tests.pipelines.projects import make_project, run
from tests.pipelines.tiny_params import TINY_PARAMS

PARAMS = {
    **TINY_PARAMS,
    "evaluate": {**TINY_PARAMS["evaluate"], "real_split": "test", "bootstrap_resamples": 100},
}


def parent_of(client: MlflowClient, pipeline_id: str) -> str:
    runs = client.search_runs(
        [client.get_experiment_by_name("pvdm").experiment_id],
        filter_string=f"tags.`pvdm.pipeline_id` = '{pipeline_id}' and tags.`pvdm.kind` = 'pipeline'",
    )
    return runs[0].info.run_id


def copy_of_champion(client: MlflowClient, project: Path, params) -> str:  # noqa: ANN001
    """A pipeline run whose registered pair holds the champion's checkpoints, evaluated by sampling them."""
    experiment = client.get_experiment_by_name("pvdm").experiment_id
    parent = client.create_run(experiment, tags={"pvdm.kind": "pipeline"}).info.run_id
    pair = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stage in (
            (promotion.AUTOENCODER, "train_autoencoder"),
            (promotion.DIFFUSION, "train_diffusion"),
        ):
            run_id = client.create_run(
                experiment, tags={"mlflow.parentRunId": parent, "pvdm.stage": stage}
            ).info.run_id
            checkpoint = download_checkpoint(client, champion_version(client, name), Path(tmp) / name)
            client.log_artifact(run_id, str(checkpoint.path), "checkpoint")
            pair[name] = client.create_model_version(name, f"runs:/{run_id}/checkpoint", run_id=run_id)
            client.set_terminated(run_id)
    score = rescoring.rescore(client, pair, project, params, "copy")
    evaluate = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "pvdm.stage": "evaluate"})
    run_id = evaluate.info.run_id
    for key, value in (
        ("fvd_16", score.fvd_16),
        ("fvd_16_ci_low", score.ci[0]),
        ("fvd_16_ci_high", score.ci[1]),
    ):
        client.log_metric(run_id, key, value)
    client.set_tag(run_id, "pvdm.eval_set_sha256", score.eval_set_sha256)
    client.set_tag(run_id, "pvdm.protocol_sha256", score.protocol_sha256)
    with tempfile.TemporaryDirectory() as tmp:
        features = score.features(client)
        np.savez(Path(tmp) / FEATURES_ARTIFACT, **features)
        client.log_artifact(run_id, str(Path(tmp) / FEATURES_ARTIFACT))
    client.set_terminated(run_id)
    return parent


@pytest.mark.slow
def test_retrain_keeps_the_eval_set_rescores_the_champion_and_never_promotes_a_copy(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", PARAMS, videos=5)
    run(["dvc", "repro"], project, PVDM_PIPELINE_ID="first")
    first_eval = json.loads((project / "metrics" / "eval.json").read_text())
    eval_set = (project / "data" / "clips" / "eval_set.json").read_bytes()
    assert first_eval["eval_set_id"] == 1 and first_eval["fvd_16_ci"][0] <= first_eval["fvd_16"]

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        client = MlflowClient()
        params = load_pipeline_params(project / "params.yaml")
        first = promotion.promote_if_better(parent_of(client, "first"), client, project, params)
        assert first.outcome == promotion.PROMOTED

        for path in generate_videos(tmp_path / "new", 3, size=32, frames=48, fps=8, seed=7):
            shutil.copyfile(path, project / "data" / "raw" / f"new_{path.name}")
        run(["dvc", "repro"], project, PVDM_PIPELINE_ID="second")
        second_eval = json.loads((project / "metrics" / "eval.json").read_text())
        assert (project / "data" / "clips" / "eval_set.json").read_bytes() == eval_set
        assert second_eval["eval_set_sha256"] == first_eval["eval_set_sha256"]

        v1 = client.get_model_version(promotion.DIFFUSION, "1")
        for key in [k for k in v1.tags if k.startswith(rescoring.SCORE_TAG)]:  # as if it predated the cache
            client.delete_model_version_tag(promotion.DIFFUSION, "1", key)
        second = promotion.promote_if_better(parent_of(client, "second"), client, project, params)
        assert second.champion_rescored is True
        assert second.champion_fvd_16 == pytest.approx(
            first_eval["fvd_16"], rel=1e-6
        )  # same set, same samples
        assert second.eval_set_sha256 == first_eval["eval_set_sha256"]

        copy = promotion.promote_if_better(copy_of_champion(client, project, params), client, project, params)
        assert copy.outcome == promotion.KEPT and copy.difference.point == 0.0
        assert copy.difference.high == 0.0 and "not better beyond the noise" in copy.reason
    finally:
        mlflow.set_tracking_uri(previous)
