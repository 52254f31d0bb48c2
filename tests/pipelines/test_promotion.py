"""Promotion against a real MLflow registry (SQLite store): the champion's score on the challenger's evaluation set,
the paired-bootstrap rule (better beyond the noise), the recorded tags, and the cases without a comparison."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipelines import promotion
from pipelines.promotion import AUTOENCODER, CHAMPION, DIFFUSION, KEPT, NO_MODEL, PROMOTED
from pipelines.stages.evaluate import FEATURES_ARTIFACT
from pvdm.config import Params
from pvdm.metrics.bootstrap import BootstrapSpec, Interval, fvd_interval

PARAMS = Params(evaluate={"bootstrap_resamples": 200})
SPEC = BootstrapSpec(200, 0.95, 0)
SET, PROTOCOL = "set-sha", "protocol-sha"
REAL = np.random.default_rng(0).normal(size=(24, 400)).astype(np.float32)


def fakes(shift: float, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(24, 400)) + shift).astype(np.float32)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    root = tmp_path_factory.mktemp("registry")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.create_experiment("pvdm", artifact_location=(root / "artifacts").as_uri())
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)


def log_evaluation(client: MlflowClient, run_id: str, fake: np.ndarray) -> float:
    """What the evaluate stage logs: fvd_16 and its interval, the set and protocol tags, the features."""
    ci = fvd_interval(REAL, fake, SPEC)
    for key, value in (("fvd_16", ci.point), ("fvd_16_ci_low", ci.low), ("fvd_16_ci_high", ci.high)):
        client.log_metric(run_id, key, value)
    client.set_tag(run_id, "pvdm.eval_set_sha256", SET)
    client.set_tag(run_id, "pvdm.protocol_sha256", PROTOCOL)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / FEATURES_ARTIFACT, real=REAL, fake=fake)
        client.log_artifact(run_id, str(Path(tmp) / FEATURES_ARTIFACT))
    return ci.point


def pipeline_run(
    client: MlflowClient, fake: np.ndarray | None, stages=("train_autoencoder", "train_diffusion")
) -> str:
    """A parent run with finished stage runs as the pipeline leaves them: models registered, evaluation logged."""
    experiment = client.get_experiment_by_name("pvdm").experiment_id
    parent = client.create_run(experiment, tags={"pvdm.kind": "pipeline"}).info.run_id
    for stage in (*stages, "evaluate"):
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "pvdm.stage": stage})
        name = {"train_autoencoder": AUTOENCODER, "train_diffusion": DIFFUSION}.get(stage)
        if name:
            if not client.search_registered_models(f"name = '{name}'"):
                client.create_registered_model(name)
            client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        if stage == "evaluate" and fake is not None:
            log_evaluation(client, run.info.run_id, fake)
        client.set_terminated(run.info.run_id)
    return parent


def champion(client: MlflowClient, name: str = DIFFUSION) -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def promote(client: MlflowClient, parent: str) -> promotion.Decision:
    return promotion.promote_if_better(parent, client, root=Path("/nonexistent"), params=PARAMS)


def test_the_rule_needs_the_whole_interval_below_minus_the_margin() -> None:
    assert promotion.beats(Interval(-5.0, -8.0, -1.0), 0.0) and not promotion.beats(
        Interval(-5.0, -8.0, -1.0), 2.0
    )
    assert not promotion.beats(Interval(-5.0, -8.0, 0.5), 0.0) and not promotion.beats(
        Interval(0.0, 0.0, 0.0), 0.0
    )
    assert not promotion.beats(Interval(float("nan"), float("nan"), float("nan")), 0.0)


def test_promotion_compares_on_the_same_set_beyond_the_noise(client: MlflowClient) -> None:
    first = pipeline_run(client, fakes(0.5))
    decision = promote(client, first)
    assert decision.outcome == PROMOTED and "no champion" in decision.reason
    assert (champion(client), champion(client, AUTOENCODER)) == ("1", "1")
    cached = [k for k in client.get_model_version(DIFFUSION, "1").tags if k.startswith("pvdm.score.")]
    assert len(cached) == 1  # its own score on its set: what the next comparison reads

    worse = pipeline_run(client, fakes(0.8))
    decision = promote(client, worse)
    assert decision.outcome == KEPT and decision.difference.low > 0 and decision.champion_rescored is False
    assert (champion(client), champion(client, AUTOENCODER)) == ("1", "1")  # unchanged
    tags = client.get_model_version(DIFFUSION, "2").tags
    assert tags["pvdm.decision"] == KEPT and float(tags["pvdm.fvd_16"]) == decision.fvd_16
    assert float(tags["pvdm.champion_fvd_16"]) == decision.champion_fvd_16
    assert (
        len(json.loads(tags["pvdm.fvd_16_ci"])) == 2 and len(json.loads(tags["pvdm.champion_fvd_16_ci"])) == 2
    )
    assert (
        json.loads(tags["pvdm.fvd_16_difference_ci"])[0] > 0
        and "paired-bootstrap" in tags["pvdm.promotion_rule"]
    )
    assert tags["pvdm.eval_set_sha256"] == SET
    run_tags = client.get_run(worse).data.tags
    assert run_tags["pvdm.decision"] == KEPT and run_tags["pvdm.champion.pvdm-diffusion"] == "1"
    assert "not better beyond the noise" in run_tags["pvdm.decision_reason"]

    copy = pipeline_run(client, fakes(0.5))  # the champion's very samples: a difference of exactly 0
    decision = promote(client, copy)
    assert decision.outcome == KEPT and decision.difference == Interval(0.0, 0.0, 0.0)

    better = pipeline_run(client, fakes(0.0))
    decision = promote(client, better)
    assert decision.outcome == PROMOTED and decision.versions == {DIFFUSION: "4", AUTOENCODER: "4"}
    assert decision.difference.high < 0 and "better beyond the noise" in decision.reason
    assert (champion(client), champion(client, AUTOENCODER)) == ("4", "4")
    assert client.get_model_version(AUTOENCODER, "4").tags["pvdm.decision"] == PROMOTED

    nothing = pipeline_run(client, None, stages=("train_diffusion",))
    decision = promote(client, nothing)
    assert decision.outcome == NO_MODEL and champion(client) == "4"
    assert client.get_run(nothing).data.tags["pvdm.decision"] == NO_MODEL


def test_a_champion_without_a_score_on_the_set_is_scored_again_or_kept(client: MlflowClient) -> None:
    version = champion(client)
    for key in [k for k in client.get_model_version(DIFFUSION, version).tags if k.startswith("pvdm.score.")]:
        client.delete_model_version_tag(DIFFUSION, version, key)  # e.g. promoted by hand, or a new set
    decision = promote(client, pipeline_run(client, fakes(-0.5)))
    # Scoring it again needs its checkpoints; these test versions logged none: the champion stays, saying why.
    assert decision.outcome == KEPT and "could not be scored on this set" in decision.reason
    assert champion(client) == version
