"""`make services` / `make services-stop` (python -m pipelines.services): three real servers on loopback, an env
file that reaches them, and a stop that ends exactly the processes that were started."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from pipelines.services import S3_BUCKETS
from pipelines.supervisor import HOST, is_same_process

pytestmark = [pytest.mark.services]


def _services(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pipelines.services", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _read_env(path: Path) -> dict[str, str]:
    pairs = [shlex.split(line)[1] for line in path.read_text().splitlines() if line.startswith("export ")]
    return dict(p.split("=", 1) for p in pairs)


def _group(pgid: int) -> list[int]:
    """Live members of a process group (a zombie has exited; it only waits for a parent to reap it)."""

    def member(proc: psutil.Process) -> bool:
        try:
            return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
        except (ProcessLookupError, psutil.Error):
            return False

    return [p.pid for p in psutil.process_iter() if member(p)]


def _records(state: Path) -> list[dict]:
    return json.loads((state / "services.json").read_text())


@pytest.mark.slow
def test_start_reach_and_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ports = ["--s3-port", "0", "--mlflow-port", "0", "--prefect-port", "0"]
    stores = [
        "--mlflow-store",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--mlflow-artifacts",
        str(tmp_path / "art"),
    ]
    started = _services("start", "--dir", str(state), *ports, *stores)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        records = _records(state)
        assert {r["name"] for r in records} == {"s3", "mlflow", "prefect"}
        env = _read_env(state / "env")
        _check_mlflow(env, tmp_path / "art")
        _check_prefect(env)
        _check_s3(env)
        again = _services("start", "--dir", str(state), *ports, *stores)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = _services("stop", "--dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count("stopped") == 3
    for rec in records:
        assert not is_same_process(rec["pid"], rec["create_time"]), rec
        assert _group(rec["pid"]) == [], rec  # the server's workers went with it
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, rec["port"]), timeout=5)
    assert not (state / "env").exists()


def _check_mlflow(env: dict[str, str], artifacts: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    run = client.create_run(client.create_experiment("services-smoke"))
    client.log_metric(run.info.run_id, "x", 1.5)
    client.log_text(run.info.run_id, "hello", "note.txt")
    assert client.get_run(run.info.run_id).data.metrics == {"x": 1.5}
    assert [p.read_text() for p in artifacts.rglob("note.txt")] == ["hello"]  # proxied to the artifact store


def _check_prefect(env: dict[str, str]) -> None:
    with urllib.request.urlopen(env["PREFECT_API_URL"] + "/health", timeout=10) as resp:
        assert json.load(resp) is True


def _check_s3(env: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= set(S3_BUCKETS)
    bucket = env["PVDM_DVC_REMOTE_URL"].removeprefix("s3://").split("/")[0]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


def test_stop_ends_recorded_groups_and_spares_a_recycled_pid(tmp_path: Path) -> None:
    ours, stranger = _sleeper(), _sleeper()
    try:
        records = [
            {"name": "ours", "pid": ours.pid, "create_time": psutil.Process(ours.pid).create_time()},
            # Same pid as a live process, but not the process that was started (as after pid reuse).
            {
                "name": "stale",
                "pid": stranger.pid,
                "create_time": psutil.Process(stranger.pid).create_time() - 60,
            },
        ]
        state = tmp_path / "state"
        state.mkdir()
        rows = [{**r, "port": 0, "log": ""} for r in records]
        (state / "services.json").write_text(json.dumps(rows))
        out = _services("stop", "--dir", str(state), timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"ours: stopped (pid {ours.pid})" in out.stdout
        assert f"stale: not running (pid {stranger.pid})" in out.stdout
        assert ours.wait(timeout=10) is not None
        time.sleep(0.2)
        assert stranger.poll() is None  # still alive
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()
