"""DVC remote on S3 (a real S3 HTTP server): `dvc push` from one clone, `dvc pull` into a fresh clone restores the
pipeline's outputs byte for byte.

The pipeline here is a two-stage stand-in (`PIPELINE`: sharded binary outputs plus a manifest derived from them) so the
test runs in seconds. When the project's dvc.yaml lands, swapping in the real stages is a change to `PIPELINE` alone:
copy dvc.yaml, params.yaml (with the demo preset) and the stage code into the temp repo instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.service_fixtures import S3Server

pytestmark = [pytest.mark.services, pytest.mark.slow]

MAKE_SHARDS = """
    import json, random, sys
    from pathlib import Path
    import yaml

    p = yaml.safe_load(open("params.yaml"))["shards"]
    rng = random.Random(p["seed"])
    out = Path("data/clips"); out.mkdir(parents=True, exist_ok=True)
    for i in range(p["count"]):
        (out / f"shard-{i:03d}.bin").write_bytes(rng.randbytes(p["bytes"]))
"""
MANIFEST = """
    import hashlib, json
    from pathlib import Path

    shards = sorted(Path("data/clips").glob("*.bin"))
    rows = [{"shard": s.name, "sha256": hashlib.sha256(s.read_bytes()).hexdigest()} for s in shards]
    Path("data/manifest.json").write_text(json.dumps(rows, indent=1))
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/shards.json").write_text(json.dumps({"n_shards": len(rows)}))
"""
DVC_YAML = """
    stages:
      make_shards:
        cmd: python make_shards.py
        deps: [make_shards.py]
        params: [shards]
        outs: [data/clips]
      manifest:
        cmd: python manifest.py
        deps: [manifest.py, data/clips]
        outs: [data/manifest.json]
        metrics:
          - metrics/shards.json:
              cache: false
"""
PIPELINE = {
    "params.yaml": "shards:\n  seed: 7\n  count: 3\n  bytes: 300000\n",
    "make_shards.py": MAKE_SHARDS,
    "manifest.py": MANIFEST,
    "dvc.yaml": DVC_YAML,
}
OUTPUTS = ["data/clips", "data/manifest.json"]  # what `dvc pull` must restore


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


def _make_repo(root: Path, files: dict[str, str], remote: str, endpoint: str, env: dict[str, str]) -> None:
    root.mkdir()
    _git("init", "-q", "-b", "main", cwd=root, env=env)
    _dvc("init", "-q", cwd=root, env=env)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    # Committed config names the remote and its endpoint; credentials come from the environment only.
    _dvc("remote", "add", "-d", "storage", remote, cwd=root, env=env)
    _dvc("remote", "modify", "storage", "endpointurl", endpoint, cwd=root, env=env)


def test_push_then_pull_into_a_fresh_clone_restores_outputs(
    s3_server: S3Server, env: dict[str, str], tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket("dvc")
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    _make_repo(origin, PIPELINE, f"s3://{bucket}/store", s3_server.endpoint_url, env)
    _dvc("repro", cwd=origin, env=env)
    _git("add", "-A", cwd=origin, env=env)
    _git("commit", "-q", "-m", "pipeline", cwd=origin, env=env)
    assert "secret" not in (origin / ".dvc" / "config").read_text().lower()
    _dvc("push", cwd=origin, env=env)
    expected = _digests(origin, OUTPUTS)
    assert len(expected) == 4  # three shards and the manifest

    stored = s3_server.keys(bucket, "store/")
    assert any(k.startswith("store/files/md5/") for k in stored), stored

    _git("clone", "-q", str(origin), str(clone), cwd=tmp_path, env=env)
    assert _digests(clone, OUTPUTS) == {}  # git carries only the pointers (dvc.lock), not the data
    _dvc("pull", cwd=clone, env=env)
    assert _digests(clone, OUTPUTS) == expected
    assert "up to date" in _dvc("status", cwd=clone, env=env)
