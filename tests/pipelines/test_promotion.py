"""Promotion by the FVD rule against a real MLflow registry (SQLite store): first model, better, worse, no model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines import promotion
from pipelines.promotion import AUTOENCODER, CHAMPION, DIFFUSION, KEPT, NO_MODEL, PROMOTED


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    root = tmp_path_factory.mktemp("registry")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.create_experiment("pvdm", artifact_location=(root / "artifacts").as_uri())
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)


def pipeline_run(
    client: MlflowClient, fvd: float | None, stages=("train_autoencoder", "train_diffusion")
) -> str:
    """A parent run with finished stage runs as the pipeline leaves them: models registered, fvd_16 logged."""
    experiment = client.get_experiment_by_name("pvdm").experiment_id
    parent = client.create_run(experiment, tags={"pvdm.kind": "pipeline"}).info.run_id
    for stage in (*stages, "evaluate"):
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "pvdm.stage": stage})
        name = {"train_autoencoder": AUTOENCODER, "train_diffusion": DIFFUSION}.get(stage)
        if name:
            if not client.search_registered_models(f"name = '{name}'"):
                client.create_registered_model(name)
            client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        if stage == "evaluate" and fvd is not None:
            client.log_metric(run.info.run_id, "fvd_16", fvd)
        client.set_terminated(run.info.run_id)
    return parent


def champion(client: MlflowClient, name: str = DIFFUSION) -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def test_is_better_is_strictly_lower_and_never_nan() -> None:
    assert promotion.is_better(10.0, None) and promotion.is_better(10.0, 10.5)
    assert not promotion.is_better(10.0, 10.0) and not promotion.is_better(11.0, 10.0)
    assert not promotion.is_better(math.nan, 10.0) and promotion.is_better(10.0, math.nan)


def test_promotion_follows_the_fvd_rule_and_records_the_decision(client: MlflowClient) -> None:
    first = pipeline_run(client, fvd=50.0)
    decision = promotion.promote_if_better(first, client)
    assert decision.outcome == PROMOTED and "no champion" in decision.reason
    assert (champion(client), champion(client, AUTOENCODER)) == ("1", "1")

    worse = pipeline_run(client, fvd=60.0)
    decision = promotion.promote_if_better(worse, client)
    assert decision.outcome == KEPT and decision.champion_fvd_16 == 50.0
    assert (champion(client), champion(client, AUTOENCODER)) == ("1", "1")  # unchanged
    version = client.get_model_version(DIFFUSION, "2")
    assert version.tags["pvdm.decision"] == KEPT and float(version.tags["pvdm.fvd_16"]) == 60.0
    assert float(version.tags["pvdm.champion_fvd_16"]) == 50.0
    run_tags = client.get_run(worse).data.tags
    assert run_tags["pvdm.decision"] == KEPT and run_tags["pvdm.champion.pvdm-diffusion"] == "1"
    assert "60" in run_tags["pvdm.decision_reason"] and "50" in run_tags["pvdm.decision_reason"]

    better = pipeline_run(client, fvd=40.0)
    decision = promotion.promote_if_better(better, client)
    assert decision.outcome == PROMOTED and decision.versions == {DIFFUSION: "3", AUTOENCODER: "3"}
    assert (champion(client), champion(client, AUTOENCODER)) == ("3", "3")
    assert client.get_model_version(AUTOENCODER, "3").tags["pvdm.decision"] == PROMOTED
    assert client.get_run(better).data.tags["pvdm.champion.pvdm-diffusion"] == "3"

    # Only diffusion retrained: the pair takes the newest autoencoder; the champion's score comes from its tag.
    diffusion_only = pipeline_run(client, fvd=45.0, stages=("train_diffusion",))
    decision = promotion.promote_if_better(diffusion_only, client)
    assert decision.outcome == KEPT and decision.versions == {DIFFUSION: "4", AUTOENCODER: "3"}
    assert decision.champion_fvd_16 == 40.0

    # A resumed run that only re-evaluated: the newest versions, already judged; no evaluate: no candidate.
    resumed = pipeline_run(client, fvd=44.0, stages=())
    decision = promotion.promote_if_better(resumed, client)
    assert decision.outcome == KEPT and decision.versions == {DIFFUSION: "4", AUTOENCODER: "3"}
    nothing = pipeline_run(client, fvd=None, stages=("train_diffusion",))
    decision = promotion.promote_if_better(nothing, client)
    assert decision.outcome == NO_MODEL and champion(client) == "3"
    assert client.get_run(nothing).data.tags["pvdm.decision"] == NO_MODEL


def test_a_champion_without_a_tag_is_scored_from_its_pipeline_run(client: MlflowClient) -> None:
    run = pipeline_run(client, fvd=30.0)
    decision = promotion.promote_if_better(run, client)  # whatever came before (40 at best), 30 beats it
    assert decision.outcome == PROMOTED
    version = decision.versions[DIFFUSION]
    client.delete_model_version_tag(DIFFUSION, version, "pvdm.fvd_16")  # e.g. promoted by hand
    assert promotion.version_fvd(client, client.get_model_version(DIFFUSION, version)) == 30.0
