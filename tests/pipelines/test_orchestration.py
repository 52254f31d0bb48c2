"""Prefect orchestration against real servers on loopback: a `prefect server start` subprocess, the project's two
deployments served by `pvdm serve`, runs started with the CLI
(`prefect deployment run ...`), new videos in a bucket of moto's S3 HTTP server, MLflow's SQLite store.

One tiny project is shared by the tests, in this order (the pipeline runs twice in all):
1. pvdm/full with a broken `evaluate` stage: the run fails, the stage's error is in the run's state message and
   logs, the stage was retried; after the fix, pvdm/full completes and reruns only `evaluate`.
2. pvdm-retrain/scheduled with two new videos in S3: ingested, the pipeline reruns fine-tuning the champion (the
   models of 1: the config is unchanged), the lineage is recorded (model version tags, checkpoints, the log), the
   training runs carry their stores as MLflow dataset inputs, the new models are promoted or not by the fvd_16 rule
   against the champion; a second run with nothing new skips the pipeline.
3. The work-pool way: serving stopped, the deployments registered with a process pool, a worker runs a retrain.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from mlflow.tracking import MlflowClient

from pipelines import promotion
from pipelines.stages.common import clip_store_sha256, latent_store_sha256
from pipelines.supervisor import HOST, free_port, spawn, stop_process_group, wait_http
from pipelines.tracking import DATASET_DIGEST_CHARS, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from pvdm.checkpoint import load_checkpoint
from pvdm.data.synthetic import generate_videos
from tests.pipelines.projects import ROOT, make_project, project_env
from tests.pipelines.tiny_params import TINY_PARAMS
from tests.service_fixtures import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.services]

STAGES = ["preprocess", "train_autoencoder", "cache_latents", "train_diffusion", "sample", "evaluate"]
CRON = "30 4 * * 1"
RUN_TIMEOUT = 1800  # seconds for one pipeline run on 2 busy cores


@dataclass
class Prefect:
    api_url: str
    env: dict[str, str]

    def get(self, path: str) -> Any:
        return _ok(httpx.get(f"{self.api_url}{path}", timeout=30))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return _ok(httpx.post(f"{self.api_url}{path}", json=body, timeout=30))

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/flow_runs/{run_id}")

    def task_runs(self, run_id: str) -> dict[str, dict[str, Any]]:
        runs = self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
        return {r["name"]: r for r in runs}

    def logs(self, run_id: str) -> str:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "sort": "TIMESTAMP_ASC"}
        lines, offset = [], 0
        while page := self.post("/logs/filter", {**body, "offset": offset}):
            lines += [entry["message"] for entry in page]
            offset += len(page)
        return "\n".join(lines)


def _ok(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prefect]:
    """`prefect server start` on a free loopback port, its state in a temporary PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://{HOST}:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
    }
    log = home / "server.log"
    proc = spawn(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)], env, log
    )
    ident = (proc.pid, psutil.Process(proc.pid).create_time())
    try:
        wait_http(f"http://{HOST}:{port}/api/health", proc, log, 240)
        yield Prefect(env["PREFECT_API_URL"], env)
    finally:
        stop_process_group(*ident)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = copy.deepcopy(TINY_PARAMS)  # with fewer training steps: the pipeline runs twice here
    params["autoencoder"]["train"].update(steps=4, checkpoint_every=2, log_every=1)
    params["diffusion"]["train"].update(steps=4, checkpoint_every=2, log_every=1)
    params["orchestration"] = {"retrain_cron": CRON, "retries": 1, "retry_delay_seconds": 1.0}
    root = make_project(tmp_path_factory.mktemp("orchestration") / "project", params)
    shutil.copy(ROOT / ".dvcignore", root / ".dvcignore")  # the ingest state file is not data
    return root


@dataclass
class Served:
    env: dict[str, str]  # for the CLI calls: the Prefect server, S3 credentials, the venv first on PATH
    stop: Callable[[], bool]


@pytest.fixture(scope="module")
def served(project: Path, prefect: Prefect, s3_server: S3Server) -> Iterator[Served]:
    """`pvdm serve` in the project (it runs `python -m pipelines.deployments serve`, as `make serve` does)."""
    env = project_env(**prefect.env, **s3_server.env, PREFECT_RUNNER_POLL_FREQUENCY="1")
    env.pop("PVDM_PIPELINE_ID")  # the flow sets it per flow run
    log = project.parent / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "pvdm"), "serve"],  # = python -m pipelines.deployments serve
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ident = (proc.pid, psutil.Process(proc.pid).create_time())
    try:
        _wait_for_deployments(prefect, proc, log)
        yield Served(env, lambda: stop_process_group(*ident))
    finally:
        stop_process_group(*ident)


def _wait_for_deployments(prefect: Prefect, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited:\n{log.read_text()[-4000:]}"
        found = prefect.post("/deployments/filter", {})
        if {d["name"] for d in found} >= {"full", "scheduled"}:
            return
        time.sleep(1)
    raise TimeoutError(f"deployments not served within {timeout} s:\n{log.read_text()[-4000:]}")


def deployment_run(env: dict[str, str], name: str, *params: str) -> tuple[int, str, str]:
    """`prefect deployment run NAME --watch`: (exit code, output, flow run id)."""
    argv = [
        sys.executable,
        "-m",
        "prefect",
        "deployment",
        "run",
        name,
        "--watch",
        "--watch-timeout",
        str(RUN_TIMEOUT),
    ]
    for param in params:
        argv += ["--param", param]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT + 120)
    text = out.stdout + out.stderr
    match = re.search(r"UUID: ([0-9a-f-]{36})", text)
    assert match, text[-4000:]
    return out.returncode, text, match[1]


def mlflow_client(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def parent_run(client: MlflowClient, flow_run_id: str) -> Any:
    experiment = client.get_experiment_by_name("pvdm").experiment_id
    runs = client.search_runs([experiment], f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
    assert len(runs) == 1, f"{len(runs)} MLflow parent runs for flow run {flow_run_id}"
    return runs[0]


def stage_names(client: MlflowClient, parent_id: str) -> set[str]:
    return set(promotion.stage_runs(client, parent_id))


# --- 1. pvdm/full: a failed stage, then the run that completes ---------------------------------------------------


@pytest.fixture(scope="module")
def full_runs(project: Path, served: Served) -> dict[str, tuple[int, str, str]]:
    stage = project / "pipelines" / "stages" / "evaluate.py"
    original = stage.read_text()
    future = "from __future__ import annotations\n"
    stage.write_text(
        original.replace(future, f'{future}raise RuntimeError("injected failure: the disk is full")\n')
    )
    try:
        failed = deployment_run(served.env, "pvdm/full")
    finally:
        stage.write_text(original)
    return {"failed": failed, "completed": deployment_run(served.env, "pvdm/full")}


def test_a_failed_stage_fails_the_flow_run_with_its_error(
    full_runs: dict[str, tuple[int, str, str]], prefect: Prefect, project: Path
) -> None:
    code, output, run_id = full_runs["failed"]
    assert code == 1 and "finished in state 'Failed'" in output
    state = prefect.flow_run(run_id)["state"]
    assert state["type"] == "FAILED"
    assert "DVC stage 'evaluate' failed" in state["message"] and "injected failure" in state["message"]
    tasks = prefect.task_runs(run_id)
    assert tasks["evaluate"]["state_type"] == "FAILED" and tasks["evaluate"]["run_count"] == 2  # retried once
    assert all(tasks[s]["state_type"] == "COMPLETED" for s in STAGES[:-1])
    assert "RuntimeError: injected failure: the disk is full" in prefect.logs(run_id)
    client = mlflow_client(project)
    parent = parent_run(client, run_id)
    assert parent.info.status == "FAILED" and parent.info.run_name == f"pipeline-{run_id}"
    assert stage_names(client, parent.info.run_id) == set(STAGES[:-1])


def test_full_deployment_completes_from_the_cli_resuming_where_dvc_left_off(
    full_runs: dict[str, tuple[int, str, str]], prefect: Prefect, project: Path
) -> None:
    code, output, run_id = full_runs["completed"]
    assert code == 0, output[-4000:]
    assert "Flow run finished successfully in 'Completed'" in output
    tasks = prefect.task_runs(run_id)
    assert sorted(tasks) == sorted(STAGES) and all(t["state_type"] == "COMPLETED" for t in tasks.values())
    logs = prefect.logs(run_id)
    assert all(f"Stage '{s}' didn't change, skipping" in logs for s in STAGES[:-1])
    client = mlflow_client(project)
    parent = parent_run(client, run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect.deployment"] == "full"
    assert stage_names(client, parent.info.run_id) == {"evaluate"}  # only what the failed run left undone
    assert "fvd_16" in json.loads((project / "metrics" / "eval.json").read_text())
    for name in (promotion.DIFFUSION, promotion.AUTOENCODER):
        assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [1]


def test_the_retrain_deployment_has_the_cron_of_params(served: Served, prefect: Prefect) -> None:
    deployment = prefect.get("/deployments/name/pvdm-retrain/scheduled")
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == CRON and schedule["schedule"]["timezone"] == "UTC"
    assert schedule["active"] and not prefect.get("/deployments/name/pvdm/full")["schedules"]


# --- 2. pvdm-retrain/scheduled: new videos in S3, then nothing new ----------------------------------------------


@pytest.fixture(scope="module")
def retrain_runs(
    full_runs: dict[str, tuple[int, str, str]],
    project: Path,
    served: Served,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    # The models of pvdm/full become the champion (the first model is promoted), as a retrain would have done.
    client = mlflow_client(project)
    first = promotion.promote_if_better(
        parent_run(client, full_runs["completed"][2]).info.run_id, client, root=project
    )
    bucket = s3_server.new_bucket("videos")
    new = tmp_path_factory.mktemp("new-videos")
    for path in generate_videos(new, 2, size=32, frames=48, fps=8, seed=7):
        s3_server.client().upload_file(str(path), bucket, f"incoming/new_{path.name}")
    source = {"ingest.source": f"s3://{bucket}/incoming", "ingest.endpoint_url": s3_server.endpoint_url}
    models_before = model_digests(project)
    with_new = deployment_run(served.env, "pvdm-retrain/scheduled", f"overrides={json.dumps(source)}")
    models_after = model_digests(project)
    nothing_new = deployment_run(served.env, "pvdm-retrain/scheduled")  # the source is in params.yaml now
    return {
        "first": first, "with_new": with_new, "nothing_new": nothing_new, "bucket": bucket,
        "models_before": models_before, "models_after": models_after,
    }  # fmt: skip


def model_digests(project: Path) -> dict[str, str]:
    models = project / "data" / "models"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(models.glob("*.pt"))}


def test_retrain_ingests_new_videos_and_promotes_by_the_fvd_rule(
    retrain_runs: dict[str, Any], prefect: Prefect, project: Path
) -> None:
    assert (
        retrain_runs["first"].outcome == promotion.PROMOTED and "no champion" in retrain_runs["first"].reason
    )
    champion_fvd = retrain_runs["first"].fvd_16
    code, output, run_id = retrain_runs["with_new"]
    assert code == 0, output[-4000:]
    assert sorted(p.name for p in (project / "data" / "raw").glob("new_*.mp4")) == [
        "new_synth_0000.mp4",
        "new_synth_0001.mp4",
    ]
    client = mlflow_client(project)
    parent = parent_run(client, run_id)
    # New data: every stage that makes or trains on data reran. `sample` reads only the two checkpoints, so DVC
    # rightly skips it when training gave byte-identical models; anything else is a missed rerun.
    ran = stage_names(client, parent.info.run_id)
    unchanged = retrain_runs["models_before"] == retrain_runs["models_after"]
    expected_ran = set(STAGES) - ({"sample"} if unchanged else set())
    dvc_lines = [line for line in prefect.logs(run_id).splitlines() if "sample" in line or "Stage" in line]
    assert ran >= expected_ran, (
        output[-4000:],
        dvc_lines[-40:],
        retrain_runs["models_before"],
        retrain_runs["models_after"],
    )
    evaluation = json.loads((project / "metrics" / "eval.json").read_text())
    new_fvd = evaluation["fvd_16"]
    version = client.get_model_version(promotion.DIFFUSION, "2")
    assert version.run_id in {
        r.info.run_id for r in promotion.stage_runs(client, parent.info.run_id).values()
    }
    # Noise-aware: promoted only when the whole paired-bootstrap interval of the difference lies below -margin.
    low, high = json.loads(version.tags["pvdm.fvd_16_difference_ci"])
    assert low <= float(version.tags["pvdm.fvd_16_difference"]) <= high
    expected = promotion.PROMOTED if high < 0 else promotion.KEPT  # the default margin is 0
    assert version.tags["pvdm.decision"] == expected and float(version.tags["pvdm.fvd_16"]) == new_fvd
    # This project's FVD reals are the train split (evaluate.real_split: train), which the new videos joined: the
    # champion's recorded score is on another set, so it was scored again on the challenger's.
    assert version.tags["pvdm.eval_set_sha256"] == evaluation["eval_set_sha256"]
    assert evaluation["eval_set_sha256"] != retrain_runs["first"].eval_set_sha256
    assert version.tags["pvdm.champion_rescored"] == "true"
    assert float(version.tags["pvdm.champion_fvd_16"]) != champion_fvd
    assert "paired-bootstrap" in version.tags["pvdm.promotion_rule"]
    assert client.get_model_version(promotion.AUTOENCODER, "2").tags["pvdm.decision"] == expected
    assert parent.data.tags["pvdm.decision"] == expected and float(parent.data.tags["pvdm.fvd_16"]) == new_fvd
    champion = "2" if expected == promotion.PROMOTED else "1"
    for name in (promotion.DIFFUSION, promotion.AUTOENCODER):
        assert str(client.get_model_version_by_alias(name, promotion.CHAMPION).version) == champion
    assert prefect.flow_run(run_id)["state"]["message"].startswith(f"{expected}: ")


def test_retrain_fine_tunes_the_champion_and_records_the_lineage(
    retrain_runs: dict[str, Any], prefect: Prefect, project: Path
) -> None:
    code, output, run_id = retrain_runs["with_new"]
    assert code == 0, output[-4000:]
    logs = prefect.logs(run_id)
    client = mlflow_client(project)
    runs = promotion.stage_runs(client, parent_run(client, run_id).info.run_id)
    for kind, name in (("autoencoder", promotion.AUTOENCODER), ("diffusion", promotion.DIFFUSION)):
        champion = f"{name} v1"  # the models of pvdm/full, promoted above
        assert f"warm start: {kind}: fine-tuning the champion ({champion})" in logs, logs[-4000:]
        version = client.get_model_version(name, "2")
        assert (
            version.tags["pvdm.init_from"] == "champion" and version.tags["pvdm.fine_tuned_from"] == champion
        )
        assert (
            client.get_model_version(name, "1").tags["pvdm.init_from"] == "none"
        )  # the first trained from scratch
        run = runs[f"train_{kind}"]
        assert run.data.tags["pvdm.fine_tuned_from"] == champion and version.run_id == run.info.run_id
        init = load_checkpoint(project / "data" / "models" / f"{kind}.pt")["init"]
        assert (init["init_from"], init["label"], init["version"]) == ("champion", champion, "1")
    assert "init_from: champion" in (project / "params.yaml").read_text()  # what the stages ran with, for DVC


def test_training_runs_log_their_stores_as_dataset_inputs(
    retrain_runs: dict[str, Any], project: Path
) -> None:
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("pvdm")
    assert (
        experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    )  # the UI opens on its model-training view
    clips = clip_store_sha256(project / "data" / "clips")
    latents = latent_store_sha256(project / "data" / "latents")
    runs = promotion.stage_runs(client, parent_run(client, retrain_runs["with_new"][2]).info.run_id)

    def inputs(stage: str) -> dict[str, tuple[str, str, str]]:
        found = client.get_run(runs[stage].info.run_id).inputs.dataset_inputs
        return {
            d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags}["pvdm.sha256"],
                             {t.key: t.value for t in d.tags}["mlflow.data.context"])
            for d in found
        }  # fmt: skip

    assert inputs("train_autoencoder") == {"clips": (clips[:DATASET_DIGEST_CHARS], clips, "training")}
    assert inputs("train_diffusion") == {
        "latents": (latents[:DATASET_DIGEST_CHARS], latents, "training"),
        "clips": (clips[:DATASET_DIGEST_CHARS], clips, "source"),
    }


def test_retrain_with_nothing_new_skips_the_pipeline(
    retrain_runs: dict[str, Any], prefect: Prefect, project: Path
) -> None:
    code, output, run_id = retrain_runs["nothing_new"]
    assert code == 0, output[-4000:]
    message = prefect.flow_run(run_id)["state"]["message"]
    assert message.startswith("skipped: nothing new at s3://") and "pipeline not run" in message
    assert not any(name in STAGES for name in prefect.task_runs(run_id))
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("pvdm").experiment_id
    assert not client.search_runs([experiment], f"tags.`prefect.flow_run_id` = '{run_id}'")
    assert len(client.search_model_versions(f"name = '{promotion.DIFFUSION}'")) == 2


# --- 3. the work-pool way: the same deployments registered with a process pool, run by a worker -------------------


def test_the_work_pool_way_runs_the_deployments_through_a_worker(
    retrain_runs: dict[str, Any], served: Served, prefect: Prefect, project: Path
) -> None:
    served.stop()  # from now on only the worker may pick up runs
    env = served.env
    run_cli(
        [sys.executable, "-m", "prefect", "work-pool", "create", "pvdm-pool", "--type", "process"],
        project,
        env,
    )
    run_cli([sys.executable, "-m", "pipelines.deployments", "deploy", "--pool", "pvdm-pool"], project, env)
    deployment = prefect.get("/deployments/name/pvdm-retrain/scheduled")
    assert (
        deployment["work_pool_name"] == "pvdm-pool" and deployment["schedules"][0]["schedule"]["cron"] == CRON
    )
    created = run_cli(
        [sys.executable, "-m", "prefect", "deployment", "run", "pvdm-retrain/scheduled"], project, env
    )
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", created)[1]
    # A polling worker, stopped once the run is final. `worker start --run-once` can return while its one
    # submission is still starting, leaving the run PENDING for good (seen once in a full `make test`).
    worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "pvdm-pool", "--limit", "1"]
    log = project.parent / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            worker, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    ident = (proc.pid, psutil.Process(proc.pid).create_time())
    try:
        state = _wait_for_final_state(prefect, run_id, proc, log, timeout=RUN_TIMEOUT)
    finally:
        stop_process_group(*ident)
    assert state["type"] == "COMPLETED", f"{state}\n{log.read_text()[-4000:]}"
    assert state["message"].startswith("skipped: nothing new at s3://")


def _wait_for_final_state(
    prefect: Prefect, run_id: str, worker: subprocess.Popen, log: Path, timeout: float
) -> dict[str, Any]:
    """The flow run's final state; a worker that dies first fails at once with its log, not at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = prefect.flow_run(run_id)["state"]
        if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return state
        assert worker.poll() is None, (
            f"worker exited with the run {state['type']}:\n{log.read_text()[-4000:]}"
        )
        time.sleep(1)
    raise TimeoutError(f"flow run {run_id} not final within {timeout} s: {state}")


def run_cli(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{argv}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr
