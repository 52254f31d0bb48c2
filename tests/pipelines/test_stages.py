"""Stage scripts against the real things: a SIGKILLed training stage resumes; a stage logs to a real MLflow server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pvdm.training.checkpoint import load_checkpoint
from tests.pipelines.projects import make_project, project_env, run
from tests.pipelines.tiny_params import TINY_PARAMS


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = yaml.safe_load(yaml.safe_dump(TINY_PARAMS))
    params["autoencoder"]["train"] |= {"steps": 40, "checkpoint_every": 4, "log_every": 4}
    project = make_project(tmp_path_factory.mktemp("stages"), params)
    run([sys.executable, "-m", "pipelines.stages.preprocess"], project)
    return project


def ray_checkpoints(project: Path) -> list[Path]:
    return sorted(
        p for p in (project / "data" / "ray").glob("train_autoencoder-*/checkpoint_*") if p.is_dir()
    )


@pytest.mark.slow
@pytest.mark.ray
def test_sigkilled_training_stage_resumes_from_its_last_checkpoint(preprocessed: Path) -> None:
    cmd = [sys.executable, "-m", "pipelines.stages.train_autoencoder"]
    proc = subprocess.Popen(cmd, cwd=preprocessed, env=project_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 600
    while not ray_checkpoints(preprocessed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_checkpoints(preprocessed), "the stage reported no checkpoint before it ended"
    # The driver and everything in its session; the local Ray it started shares its fate (Ray sets the
    # parent-death signal on the processes of a local cluster). `ray stop --force` would also end every other
    # Ray on the machine, this test session's own included.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    output = run(cmd, preprocessed)
    assert "resuming from the checkpoint of step" in output
    payload = load_checkpoint(preprocessed / "data" / "models" / "autoencoder.pt")
    assert payload["step"] == 40
    steps = [int(r["step"]) for r in payload["history"]]
    assert steps == list(range(4, 41, 4))  # one unbroken curve: nothing lost, nothing repeated


@pytest.mark.services
def test_preprocess_stage_logs_to_a_real_mlflow_server(preprocessed: Path, mlflow_server) -> None:  # noqa: ANN001
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        **mlflow_server.s3.env,
        "PVDM_PIPELINE_ID": "srv",
    }
    run([sys.executable, "-m", "pipelines.stages.preprocess"], preprocessed, **env)

    client = MlflowClient(mlflow_server.tracking_uri)
    experiment = client.get_experiment_by_name("pvdm")
    runs = client.search_runs([experiment.experiment_id], "tags.`pvdm.pipeline_id` = 'srv'")
    stage = next(r for r in runs if r.data.tags.get("pvdm.kind") == "stage")
    parent = next(r for r in runs if r.data.tags.get("pvdm.kind") == "pipeline")
    assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert stage.data.tags["pvdm.stage"] == "preprocess" and stage.data.tags["pvdm.git_commit"]
    assert stage.data.params["data.resolution"] == "16"
    assert stage.data.metrics["clips"] > 0
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    artifacts = {a.path for a in client.list_artifacts(stage.info.run_id, "data_report")}
    assert {"data_report/report.json", "data_report/validation.json"} <= artifacts
    keys = mlflow_server.s3.keys(mlflow_server.artifact_bucket)
    assert any(k.endswith("data_report/report.json") for k in keys)  # really stored in S3
