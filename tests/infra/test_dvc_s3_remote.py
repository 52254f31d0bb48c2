"""DVC remote on S3 (a real S3 HTTP server): `dvc push` from one clone, `dvc pull` into a fresh clone restores the
pipeline's outputs byte for byte. The pipeline is the project's own (dvc.yaml, stage code, tiny params); its
`preprocess` stage runs for real, so the test takes seconds, not the minutes of the whole pipeline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipelines.projects import make_project
from tests.service_fixtures import S3Server

pytestmark = [pytest.mark.services, pytest.mark.slow]

OUTPUTS = ["data/raw", "data/clips"]  # the DVC-tracked raw videos and the preprocess stage's clip store


def _sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _dvc(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return _sh([sys.executable, "-m", "dvc", *args], cwd, env)


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return _sh(["git", *args], cwd, env)


def _digests(root: Path, outputs: list[str]) -> dict[str, str]:
    files = [p for out in outputs for p in sorted([root / out, *(root / out).rglob("*")]) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def env(s3_server: S3Server, tmp_path: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # the stages' `python` is this interpreter
    return {
        **os.environ,
        **s3_server.env,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
        "GIT_AUTHOR_NAME": "pvdm-test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "pvdm-test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def _add_remote(root: Path, remote: str, endpoint: str, env: dict[str, str]) -> None:
    # Committed config names the remote and its endpoint; credentials come from the environment only.
    _dvc("remote", "add", "-d", "storage", remote, cwd=root, env=env)
    _dvc("remote", "modify", "storage", "endpointurl", endpoint, cwd=root, env=env)


def test_push_then_pull_into_a_fresh_clone_restores_outputs(
    s3_server: S3Server, env: dict[str, str], tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket("dvc")
    origin, clone = make_project(tmp_path / "origin"), tmp_path / "clone"
    _add_remote(origin, f"s3://{bucket}/store", s3_server.endpoint_url, env)
    _dvc("add", "data/raw", cwd=origin, env=env)  # raw videos versioned by DVC, a dependency of preprocess
    _dvc("repro", "preprocess", cwd=origin, env=env)  # the real stage: decode, cut, shard, validate
    _git("add", "-A", cwd=origin, env=env)
    _git("commit", "-q", "-m", "pipeline", cwd=origin, env=env)
    assert "secret" not in (origin / ".dvc" / "config").read_text().lower()
    _dvc("push", "data/raw.dvc", "preprocess", cwd=origin, env=env)
    expected = _digests(origin, OUTPUTS)
    assert any(k.startswith("data/clips/shards/") for k in expected) and any(
        k.startswith("data/raw/") for k in expected
    )

    stored = s3_server.keys(bucket, "store/")
    assert any(k.startswith("store/files/md5/") for k in stored), stored

    _git("clone", "-q", str(origin), str(clone), cwd=tmp_path, env=env)
    assert (
        _digests(clone, OUTPUTS) == {}
    )  # git carries only the pointers (dvc.lock, data/raw.dvc), not the data
    _dvc("pull", "data/raw.dvc", "preprocess", cwd=clone, env=env)  # the later stages were never run
    assert _digests(clone, OUTPUTS) == expected
    assert "up to date" in _dvc("status", "preprocess", cwd=clone, env=env)
