"""The service stack: placeholder secrets refuse to start it; MLflow and Prefect answer only signed-in clients;
no local secret goes into an image; Ray's dashboard is not on a public interface."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from pipelines.supervisor import HOST, free_port, spawn, stop_process_group, wait_http

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
GOOD = {
    "POSTGRES_PASSWORD": "pg-long-enough-secret",
    "S3_SECRET_KEY": "s3-long-enough-secret",
    "MLFLOW_ADMIN_PASSWORD": "mlflow-long-enough",
    "PREFECT_AUTH_STRING": "admin:prefect-long-enough",
}


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(INFRA / "preflight.py")], env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("POSTGRES_PASSWORD", "change-me", "change-me placeholder"),
        ("PREFECT_AUTH_STRING", "admin:change-me", "change-me placeholder"),
        ("S3_SECRET_KEY", "", "not set"),
        ("MLFLOW_ADMIN_PASSWORD", "pw-7x9q", "shorter than 12"),
        ("PREFECT_AUTH_STRING", "no-colon-but-long", "user:password"),
    ],
)
def test_the_stack_refuses_to_start_with_placeholder_or_weak_secrets(
    name: str, value: str, reason: str
) -> None:
    assert _preflight(GOOD).returncode == 0
    refused = _preflight({**GOOD, name: value})
    assert refused.returncode == 1 and name in refused.stderr and reason in refused.stderr
    if value and "change-me" not in value:
        assert value not in refused.stderr  # the reason, never the value


def test_every_service_waits_for_the_preflight_and_the_example_env_would_be_refused() -> None:
    services = yaml.safe_load((INFRA / "compose.yaml").read_text())["services"]

    def waits_for_preflight(name: str, seen: frozenset[str] = frozenset()) -> bool:
        deps = set(services[name].get("depends_on", {})) - seen
        return "preflight" in deps or any(waits_for_preflight(d, seen | {name}) for d in deps)

    assert all(waits_for_preflight(name) for name in services if name != "preflight")
    assert services["preflight"]["restart"] == "no" and not services["preflight"].get("depends_on")
    example = dict(
        line.split("=", 1)
        for line in (INFRA / ".env.example").read_text().splitlines()
        if line and line[0] != "#"
    )
    assert _preflight(example).returncode == 1


def test_mlflow_and_prefect_are_served_behind_a_sign_in() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())["services"]
    assert compose["mlflow"]["command"][2:4] == ["--app-name", "basic-auth"]
    assert "PREFECT_SERVER_API_AUTH_STRING" in compose["prefect-server"]["environment"]
    worker = compose["prefect-worker"]["environment"]
    assert {"PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(worker)


def test_no_local_secret_file_goes_into_an_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in ("infra/.env", "infra/.env.*", ".dvc/config.local", ".services"):
        assert entry in ignored, entry


def test_the_ray_head_binds_its_dashboard_to_loopback() -> None:
    cluster = (INFRA / "ray" / "cluster.yaml").read_text()
    assert "--dashboard-host=0.0.0.0" not in cluster and "--dashboard-host=127.0.0.1" in cluster


@pytest.fixture
def mlflow_with_auth(tmp_path: Path) -> Iterator[str]:
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(
        (INFRA / "mlflow" / "basic_auth.ini")
        .read_text()
        .replace("sqlite:////mlflow-auth/", f"sqlite:///{tmp_path}/")
    )
    port = free_port()
    env = {
        **os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": "mlflow-long-enough",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "mlflow-long-enough",
    }  # fmt: skip
    argv = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", HOST, "--port",
            str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip
    log = tmp_path / "mlflow.log"
    proc = spawn(argv, env, log)
    try:
        wait_http(f"http://{HOST}:{port}/health", proc, log, timeout=180)
        yield f"http://{HOST}:{port}"
    finally:
        stop_process_group(proc.pid, psutil.Process(proc.pid).create_time())


@pytest.mark.services
def test_mlflow_basic_auth_app_refuses_anonymous_clients(mlflow_with_auth: str) -> None:
    search = f"{mlflow_with_auth}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, timeout=30).status_code == 401
    assert httpx.get(search, auth=("admin", "wrong-password"), timeout=30).status_code == 401
    assert httpx.get(search, auth=("admin", "mlflow-long-enough"), timeout=30).status_code == 200


@pytest.mark.services
def test_prefect_api_auth_string_refuses_anonymous_clients(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_AUTH_STRING": "admin:prefect-long-enough",
    }  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    proc = spawn(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)], env, log
    )
    ident = (proc.pid, psutil.Process(proc.pid).create_time())
    flows = f"http://{HOST}:{port}/api/flows/filter"
    try:
        signed_in = None
        for _ in range(240):
            try:
                signed_in = httpx.post(flows, json={}, auth=("admin", "prefect-long-enough"), timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
        assert signed_in is not None and signed_in.status_code == 200, log.read_text()[-3000:]
        assert httpx.post(flows, json={}, timeout=10).status_code == 401
        assert httpx.post(flows, json={}, auth=("admin", "wrong-password"), timeout=10).status_code == 401
    finally:
        stop_process_group(*ident)
