"""Real servers on loopback for the tests: an S3 HTTP server (moto), PostgreSQL, and an MLflow tracking server with a
PostgreSQL backend store and S3 artifacts.

Session-scoped pytest fixtures, registered for the whole suite by `pytest_plugins` in tests/conftest.py:

    s3_server        S3Server: endpoint_url, env (fake credentials + endpoint vars), client(), new_bucket()
    postgres         PostgresServer: create_database(name) -> SQLAlchemy URL
    mlflow_server    MlflowServer: tracking_uri, backend_uri, artifact_bucket, artifact_prefix, s3

Each server runs as a child process in its own process group and is ended in the fixture's teardown. PostgreSQL comes
from Debian's packages (scripts/install-system-deps.sh; .ci/run installs it); where its binaries are missing, or the
suite runs as root without a `postgres` account, the tests that need it skip and say why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from pipelines.services import FAKE_AWS
from pipelines.supervisor import HOST, free_port, spawn, stop_process_group, wait_http

SERVER_START_TIMEOUT = 180.0  # seconds; MLflow needs ~15 s alone, more on 2 busy cores


@dataclass
class S3Server:
    endpoint_url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@dataclass
class PostgresServer:
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{HOST}:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(database))

    def create_database(self, name: str) -> str:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


@dataclass
class MlflowServer:
    tracking_uri: str
    backend_uri: str
    artifact_bucket: str
    artifact_prefix: str
    s3: S3Server


def _started(argv: list[str], env: dict[str, str], log: Path, health_url: str) -> tuple[int, float]:
    """Spawn a server and wait until `health_url` answers; returns (pid, create_time) for the teardown."""
    proc = spawn(argv, env, log)
    ident = (proc.pid, psutil.Process(proc.pid).create_time())
    try:
        wait_http(health_url, proc, log, SERVER_START_TIMEOUT)
    except BaseException:
        stop_process_group(*ident)
        raise
    return ident


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server as a separate process (never in-process: `mock_aws` elsewhere would reset its state)."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    ident = _started(argv, {}, log, f"http://{HOST}:{port}/")
    endpoint = f"http://{HOST}:{port}"
    yield S3Server(endpoint, {**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint})
    stop_process_group(*ident)


def postgres_bindir() -> Path | None:
    """Directory holding `postgres` and `initdb` (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(str(Path(pg_ctl).resolve().parent))
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    for cand in filter(None, candidates):
        if (Path(cand) / "postgres").is_file() and (Path(cand) / "initdb").is_file():
            return Path(cand)
    return None


def _postgres_account() -> dict:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` account that Debian's package creates."""
    if os.geteuid() != 0:
        return {}
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` account to run PostgreSQL as")
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _wait_for_postgres(server: PostgresServer, proc: subprocess.Popen, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            server.connect().close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (password auth over TCP), deleted afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (Debian: `apt-get install postgresql`, "
            "or scripts/install-system-deps.sh as root; or set PG_BINDIR)"
        )
    account = _postgres_account()
    # Not under pytest's tmp dir: that is mode 700 and root-owned, so the postgres account could not enter it.
    base = Path(tempfile.mkdtemp(prefix="pvdm-pg-"))
    try:
        yield from _run_postgres(bindir, base, account)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_postgres(bindir: Path, base: Path, account: dict) -> Iterator[PostgresServer]:
    server = PostgresServer(port=free_port(), user="pvdm", password=secrets.token_hex(8))
    (base / "pwfile").write_text(server.password + "\n")
    (base / "sock").mkdir()
    if account:
        for path in (base, base / "pwfile", base / "sock"):
            shutil.chown(path, account["user"], account["group"])
    data, pwfile, sock = str(base / "data"), str(base / "pwfile"), str(base / "sock")
    initdb = [str(bindir / "initdb"), "-D", data, "-U", server.user, "--pwfile", pwfile]
    initdb += ["--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--no-sync"]
    subprocess.run(initdb, check=True, capture_output=True, timeout=120, **account)
    argv = [str(bindir / "postgres"), "-D", data, "-p", str(server.port), "-k", sock]
    argv += ["-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "full_page_writes=off"]
    log = base / "postgres.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **account)
    try:
        _wait_for_postgres(server, proc, log)
        yield server
    finally:
        proc.send_signal(2)  # SIGINT: PostgreSQL's "fast" shutdown (SIGTERM would wait for clients)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process_group(proc.pid, psutil.Process(proc.pid).create_time(), timeout=0)


@pytest.fixture(scope="session")
def mlflow_server(
    postgres: PostgresServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """`mlflow server`: runs, params, metrics and the model registry in PostgreSQL; artifacts proxied to S3."""
    backend = postgres.create_database("mlflow")
    bucket, prefix = s3_server.new_bucket("mlflow"), "artifacts"
    port = free_port()
    argv = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1"]
    argv += ["--backend-store-uri", backend, "--artifacts-destination", f"s3://{bucket}/{prefix}"]
    env = {**s3_server.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = tmp_path_factory.mktemp("mlflow") / "mlflow.log"
    ident = _started(argv, env, log, f"http://{HOST}:{port}/health")
    yield MlflowServer(f"http://{HOST}:{port}", backend, bucket, prefix, s3_server)
    stop_process_group(*ident)
