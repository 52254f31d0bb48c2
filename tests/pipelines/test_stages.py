"""Stage scripts against the real things: a SIGKILLed training stage resumes; a stage logs to a real MLflow server."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pvdm.checkpoint import load_checkpoint
from tests.pipelines.projects import make_project, project_env, run
from tests.pipelines.tiny_params import TINY_PARAMS


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = yaml.safe_load(yaml.safe_dump(TINY_PARAMS))
    params["autoencoder"]["train"] |= {"steps": 40, "checkpoint_every": 4, "log_every": 4}
    project = make_project(tmp_path_factory.mktemp("stages"), params)
    run([sys.executable, "-m", "pipelines.stages.preprocess"], project)
    return project


def reported_checkpoint_step(project: Path) -> int | None:
    """The step of the newest checkpoint Ray has recorded in its run state, the one a rerun restores.

    A checkpoint folder appears a moment before Ray records it; a kill in between loses that checkpoint.
    """
    for snapshot in (project / "data" / "ray").glob("train_autoencoder-*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
        except (OSError, json.JSONDecodeError):  # being rewritten right now
            return None
        if latest:
            return int(latest["metrics"]["step"])
    return None


@pytest.mark.slow
@pytest.mark.ray
def test_sigkilled_training_stage_resumes_from_its_last_checkpoint(preprocessed: Path) -> None:
    cmd = [sys.executable, "-m", "pipelines.stages.train_autoencoder"]
    proc = subprocess.Popen(cmd, cwd=preprocessed, env=project_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 600
    while (
        reported_checkpoint_step(preprocessed) is None and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    reported = reported_checkpoint_step(preprocessed)
    assert reported is not None, "the stage reported no checkpoint before it ended"
    # The driver and everything in its session; the local Ray it started shares its fate (Ray sets the
    # parent-death signal on the processes of a local cluster). `ray stop --force` would also end every other
    # Ray on the machine, this test session's own included.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reported < 40, "the first run finished before it was killed: nothing to resume"

    output = run(cmd, preprocessed)
    resumed_at = re.search(r"resuming from the checkpoint of step (\d+)", output)
    assert resumed_at, "the rerun started over instead of resuming"
    assert int(resumed_at.group(1)) >= reported  # at least the checkpoint recorded before the kill
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


# Run in the project as `python -c`: the stage's validation_process is wrapped before the stage module imports it.
RECORD_WHAT_WAS_LOADED = """
import sys
import pvdm.data.workers as workers

start = workers.validation_process
loaded = {}

def recording():
    loaded["when validation started"] = sorted(m for m in ("mlflow", "pandas", "torch") if m in sys.modules)
    return start()

workers.validation_process = recording
from pipelines.stages import common, preprocess

common.run_stage(preprocess.main)
loaded["at the end"] = sorted(m for m in ("mlflow", "torch") if m in sys.modules)
print("LOADED", loaded)
"""


def test_preprocess_starts_validation_before_mlflow_and_never_loads_torch(preprocessed: Path) -> None:
    """What keeps a retrain with few new videos cheap (issue 28): great-expectations loads in the validation process
    while this one imports MLflow and pandas, and params validation loads no torch. The run is still logged."""
    out = run([sys.executable, "-c", RECORD_WHAT_WAS_LOADED], preprocessed, PVDM_PIPELINE_ID="loaded")
    loaded = ast.literal_eval(re.search(r"^LOADED (.*)$", out, re.M).group(1))
    assert loaded == {"when validation started": [], "at the end": ["mlflow"]}
    client = MlflowClient(f"sqlite:///{preprocessed / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pvdm")
    runs = client.search_runs([experiment.experiment_id], "tags.`pvdm.pipeline_id` = 'loaded'")
    stage = next(r for r in runs if r.data.tags.get("pvdm.stage") == "preprocess")
    assert stage.info.status == "FINISHED" and stage.data.metrics["clips"] > 0
    report = json.loads((preprocessed / "data" / "clips" / "report.json").read_text())
    assert report["validation"]["success"] is True
    assert report["decoded"] == 0 and report["reused"] == report["counts"]["processed"] > 0
