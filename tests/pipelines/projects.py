"""Throwaway pipeline projects for tests: the project's code and dvc.yaml, tiny params, a few synthetic videos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pvdm.data.synthetic import generate_videos
from tests.pipelines.tiny_params import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[2]


def project_env(**extra: str) -> dict[str, str]:
    """The venv's bin first on PATH (so dvc.yaml's `python` is the project's), a fixed pipeline id."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PVDM_PIPELINE_ID": "test",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env | extra


def run(cmd: list[str], cwd: Path, timeout: int = 1500, **env: str) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=project_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout + result.stderr


def make_project(dest: Path, params: dict[str, Any] | None = None, videos: int = 5) -> Path:
    """A git + DVC project in `dest` running this checkout's pipeline code."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in (".gitignore", "dvc.yaml", "pvdm", "pipelines"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / item)
    (dest / "params.yaml").write_text(yaml.safe_dump(params or TINY_PARAMS))
    generate_videos(dest / "data" / "raw", videos, size=32, frames=48, fps=8, seed=1)
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    return dest
