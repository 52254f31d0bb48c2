"""Local development services on loopback: an MLflow server, a Prefect server and an S3-compatible server.

    python -m pipelines.services start    # `make services`: start all three, write .services/env
    python -m pipelines.services status
    python -m pipelines.services stop     # `make services-stop`: end exactly the processes `start` started

No containers: MLflow and Prefect run from the project's environment, and S3 is moto's server (in memory: its
buckets are gone after `stop`). MLflow keeps the project's own store (`mlflow.db`, `mlartifacts/`), so the runs a
`dvc repro` logged without a server show up in its UI. Every process is started in its own session (its own process
group) and recorded with its start time in `.services/services.json`; `stop` signals only a recorded group whose
leader is still the process that was started, never a recycled pid.

Starting, waiting for and ending the processes is pipelines.supervisor's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from pipelines.supervisor import HOST, is_same_process, pick_port, spawn, stop_process_group, wait_http

DEFAULT_PORTS = {"s3": 9000, "mlflow": 5000, "prefect": 4200}
S3_BUCKETS = ("pvdm-dvc", "pvdm-data")
# moto accepts any key pair; these are placeholders, not secrets.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
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
