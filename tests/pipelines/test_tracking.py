"""Stage runs end in the state that happened: FINISHED, FAILED, or KILLED on SIGTERM; the parent run follows."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.tracking import flatten, stage_run


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
