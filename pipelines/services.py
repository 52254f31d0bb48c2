"""Local development services on loopback: an MLflow server, a Prefect server and an S3-compatible server.

    python -m pipelines.services start    # `make services`: start all three, write .services/env
    python -m pipelines.services status
    python -m pipelines.services stop     # `make services-stop`: end exactly the processes `start` started

No containers: MLflow and Prefect run from the project's environment, and S3 is moto's server (in memory: its
buckets are gone after `stop`). MLflow keeps the project's own store (`mlflow.db`, `mlartifacts/`), so the runs a
`dvc repro` logged without a server show up in its UI. Every process is started in its own session (its own process
group) and recorded with its start time in `.services/services.json`; `stop` signals only a recorded group whose
leader is still the process that was started, never a recycled pid.

The helpers (`free_port`, `spawn`, `wait_http`, `stop_process_group`) are reused by the tests that start real servers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"
DEFAULT_PORTS = {"s3": 9000, "mlflow": 5000, "prefect": 4200}
S3_BUCKETS = ("pvdm-dvc", "pvdm-data")
# moto accepts any key pair; these are placeholders, not secrets.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int
    health_url: str
    env: dict[str, str]


@dataclass(frozen=True)
class Record:
    """What `stop` needs to end a process and only it."""

    name: str
    pid: int
    create_time: float
    port: int
    log: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int) -> int:
    """The preferred port when it is free, else any free one (0 = any)."""
    return preferred if preferred and port_is_free(preferred) else free_port()


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a detached server in a new session (its own process group), output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            env={**os.environ, **QUIET, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Poll `url` until it answers 2xx; fail early (with the log's tail) if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s:\n{log_tail(log_path)}")


def is_same_process(pid: int, create_time: float) -> bool:
    """Whether `pid` still runs the process started at `create_time` (a zombie has ended: it only awaits a reaper)."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_process_group(pid: int, create_time: float, timeout: float = 15.0) -> bool:
    """SIGTERM the group led by `pid` (SIGKILL after `timeout`); False if `pid` is no longer that process."""
    if not is_same_process(pid, create_time):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies, awaiting their parent's wait, do not count)."""
    _reap(pgid)
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def _reap(pid: int) -> None:
    """Collect the exit status when the leader is our own child (the tests), so it is not left a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def local_services(
    root: Path, ports: dict[str, int], mlflow_store: str, mlflow_artifacts: str
) -> list[Service]:
    py = sys.executable
    s3, mlf, pfc = ports["s3"], ports["mlflow"], ports["prefect"]
    mlflow_argv = [py, "-m", "mlflow", "server", "--host", HOST, "--port", str(mlf), "--workers", "1"]
    mlflow_argv += ["--backend-store-uri", mlflow_store, "--artifacts-destination", mlflow_artifacts]
    prefect_argv = [py, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(pfc)]
    return [
        Service("s3", [py, "-m", "moto.server", "-H", HOST, "-p", str(s3)], s3, f"http://{HOST}:{s3}/", {}),
        # Job execution (GenAI scorers, prompt optimisation) spawns seven huey consumers we do not use.
        Service(
            "mlflow",
            mlflow_argv,
            mlf,
            f"http://{HOST}:{mlf}/health",
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
        Service("prefect", prefect_argv, pfc, f"http://{HOST}:{pfc}/api/health", _prefect_env(root)),
    ]


def _prefect_env(root: Path) -> dict[str, str]:
    return {"PREFECT_HOME": str(root / "prefect")}


def env_lines(ports: dict[str, int]) -> dict[str, str]:
    """The variables a shell (or a test) uses to reach the running services."""
    s3 = f"http://{HOST}:{ports['s3']}"
    return {
        "MLFLOW_TRACKING_URI": f"http://{HOST}:{ports['mlflow']}",
        "PREFECT_API_URL": f"http://{HOST}:{ports['prefect']}/api",
        "AWS_ENDPOINT_URL": s3,
        "MLFLOW_S3_ENDPOINT_URL": s3,
        **FAKE_AWS,
        "PVDM_DVC_REMOTE_URL": f"s3://{S3_BUCKETS[0]}/store",
        "PVDM_DATA_URL": f"s3://{S3_BUCKETS[1]}/videos",
    }


def write_env(path: Path, env: dict[str, str]) -> None:
    header = "# Written by `make services` (pipelines/services.py). Use it with: source .services/env\n"
    path.write_text(header + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))


def create_buckets(endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    for bucket in S3_BUCKETS:
        client.create_bucket(Bucket=bucket)


def read_records(root: Path) -> list[Record]:
    path = root / "services.json"
    return [Record(**r) for r in json.loads(path.read_text())] if path.exists() else []


def running(root: Path) -> list[Record]:
    return [r for r in read_records(root) if is_same_process(r.pid, r.create_time)]


def start(
    root: Path, ports: dict[str, int], mlflow_store: str, mlflow_artifacts: str, timeout: float
) -> dict:
    """Start the three servers (in parallel), wait until each answers, record them, write `root/env`."""
    if alive := running(root):
        raise RuntimeError(f"already running: {', '.join(r.name for r in alive)} (make services-stop first)")
    root.mkdir(parents=True, exist_ok=True)
    ports = {name: pick_port(port) for name, port in ports.items()}
    started: list[tuple[Service, subprocess.Popen]] = []
    try:
        for svc in local_services(root, ports, mlflow_store, mlflow_artifacts):
            started.append((svc, spawn(svc.argv, svc.env, root / "logs" / f"{svc.name}.log")))
            _write_records(root, started)
        for svc, proc in started:
            wait_http(svc.health_url, proc, root / "logs" / f"{svc.name}.log", timeout)
        create_buckets(f"http://{HOST}:{ports['s3']}")
    except BaseException:
        stop(root)
        raise
    env = env_lines(ports)
    write_env(root / "env", env)
    return env


def _write_records(root: Path, started: list[tuple[Service, subprocess.Popen]]) -> None:
    records = [
        Record(
            svc.name,
            p.pid,
            psutil.Process(p.pid).create_time(),
            svc.port,
            str(root / "logs" / f"{svc.name}.log"),
        )
        for svc, p in started
    ]
    (root / "services.json").write_text(json.dumps([asdict(r) for r in records], indent=2))


def stop(root: Path) -> list[str]:
    """End the recorded process groups; a pid that now belongs to another process is left alone."""
    messages = []
    for rec in read_records(root):
        ended = stop_process_group(rec.pid, rec.create_time)
        messages.append(f"{rec.name}: {'stopped' if ended else 'not running'} (pid {rec.pid})")
    (root / "services.json").unlink(missing_ok=True)
    (root / "env").unlink(missing_ok=True)
    return messages


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.services", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".services"), help="state: pids, logs, env file")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, help=f"(default {port}; 0 = any free)")
    parser.add_argument("--mlflow-store", default=f"sqlite:///{Path('mlflow.db').resolve()}")
    parser.add_argument("--mlflow-artifacts", default=str(Path("mlartifacts").resolve()))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.dir.resolve()
    if args.command == "stop":
        print("\n".join(stop(root)) or f"nothing recorded in {root}")
    elif args.command == "status":
        alive = {r.name for r in running(root)}
        for rec in read_records(root):
            print(f"{rec.name}: {'up' if rec.name in alive else 'down'} on port {rec.port} (log {rec.log})")
    else:
        ports = {name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS}
        env = start(root, ports, args.mlflow_store, args.mlflow_artifacts, args.timeout)
        print("\n".join(f"{k}={v}" for k, v in env.items() if "SECRET" not in k))
        print(
            f"\nsource {root / 'env'}    # MLflow UI: {env['MLFLOW_TRACKING_URI']}, Prefect UI: {env['PREFECT_API_URL'][:-4]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
