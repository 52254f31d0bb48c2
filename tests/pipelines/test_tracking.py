"""Stage runs end in the state that happened: FINISHED, FAILED, or KILLED on SIGTERM; the parent run follows.
The experiment opens on MLflow's model-training view, and a run's data stores are its MLflow dataset inputs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.tracking import (
    DATASET_DIGEST_CHARS,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    configure,
    experiment_ui_url,
    flatten,
    log_dataset_input,
    stage_run,
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PVDM_PIPELINE_ID", f"test-{tmp_path.name}")
    return MlflowClient(uri)


def runs(client: MlflowClient) -> dict[str, str]:
    experiment = client.get_experiment_by_name("pvdm")
    found = client.search_runs([experiment.experiment_id])
    return {r.data.tags.get("pvdm.stage", r.data.tags.get("pvdm.kind")): r.info.status for r in found}


def test_a_sigterm_ends_the_stage_and_its_pipeline_as_killed(store: MlflowClient) -> None:
    before = signal.getsignal(signal.SIGTERM)  # another library (Ray) may have installed one in this process
    with pytest.raises(SystemExit) as exit_info, stage_run("train_diffusion", {"a": 1}, deps=[]):
        os.kill(os.getpid(), signal.SIGTERM)
    assert exit_info.value.code == 143
    assert runs(store) == {"train_diffusion": "KILLED", "pipeline": "KILLED"}
    assert signal.getsignal(signal.SIGTERM) == before  # the stage's handler is gone again


def test_a_failing_stage_fails_and_the_last_stage_finishes_the_pipeline(store: MlflowClient) -> None:
    with pytest.raises(RuntimeError), stage_run("sample", {}, deps=[]):
        raise RuntimeError("broken")
    assert runs(store) == {"sample": "FAILED", "pipeline": "FAILED"}
    with stage_run("evaluate", {}, deps=[]):
        pass
    assert runs(store) == {"sample": "FAILED", "evaluate": "FINISHED", "pipeline": "FINISHED"}


def test_params_never_carry_a_credential_inside_a_url() -> None:
    flat = flatten({"runtime": {"ray_storage": "s3://AKIA:SeCrEt@bucket/ray"}, "access_key": "x"})
    assert flat == {"runtime.ray_storage": "s3://***@bucket/ray"}


@pytest.mark.services
def test_the_experiment_opens_on_the_model_training_view_of_a_real_server(
    mlflow_server,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """MLflow 3's UI opens an experiment on its GenAI view unless the experiment says it is model training
    (`mlflow.experimentKind`): pvdm says so for the experiments it creates and for existing ones."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.tracking_uri)
    for key, value in mlflow_server.s3.env.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(mlflow_server.tracking_uri)
    existing = client.create_experiment(f"pvdm-old-{tmp_path.name}")  # made before pvdm tagged experiments
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(existing).tags
    for name in (f"pvdm-old-{tmp_path.name}", f"pvdm-new-{tmp_path.name}"):
        monkeypatch.setattr(tracking, "EXPERIMENT", name)
        configure(tmp_path)
        assert client.get_experiment_by_name(name).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    url = experiment_ui_url(mlflow_server.tracking_uri + "/", existing)
    assert url == f"{mlflow_server.tracking_uri}/#/experiments/{existing}/runs?workflowType=machine_learning"


def test_a_data_store_is_logged_as_a_dataset_input_with_its_hash(store: MlflowClient, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    sha = hashlib.sha256(b"manifest").hexdigest()
    with stage_run("train_autoencoder", {}, deps=[]) as run:
        log_dataset_input("clips", clips, sha)
        log_dataset_input("latents", clips, "f" * 64, context="source")
    [first, second] = store.get_run(run.info.run_id).inputs.dataset_inputs
    assert (first.dataset.name, first.dataset.digest) == ("clips", sha[:DATASET_DIGEST_CHARS])
    assert {t.key: t.value for t in first.tags} == {"pvdm.sha256": sha, "mlflow.data.context": "training"}
    assert json.loads(first.dataset.source) == {"uri": str(clips)} and first.dataset.source_type == "local"
    assert {t.key: t.value for t in second.tags}["mlflow.data.context"] == "source"


def test_tags_pvdm_sets_have_url_credentials_masked() -> None:
    from pipelines.tracking import safe_tags

    tags = safe_tags(
        {"pvdm.init_from": "s3://KEY:SECRET@bucket/ckpt.pt", "pvdm.fvd_16": 912.77, "plain": "v2"}
    )
    assert tags == {"pvdm.init_from": "s3://***@bucket/ckpt.pt", "pvdm.fvd_16": "912.77", "plain": "v2"}
