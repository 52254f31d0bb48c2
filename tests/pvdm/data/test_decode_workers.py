"""Decode workers start without the caller's main module: a DVC stage script imports MLflow and torch, and
multiprocessing would import it again in every worker on every run (seconds each, however few videos are new)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pvdm.data.synthetic import generate_videos

CALLER = """
import os
with open({marker!r}, "a") as log:
    log.write(f"{{os.getpid()}}\\n")  # once per process that imports this module

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.preprocess import run_preprocess

if __name__ == "__main__":
    cfg = PreprocessConfig(workers=2, test_fraction=0.3)
    report = run_preprocess({raw!r}, {out!r}, DataConfig(resolution=16, frames=4), cfg, progress=False)
    print(report.decoded)
"""


@pytest.mark.parametrize("how", ["module", "path"])
def test_decode_workers_do_not_import_the_callers_main_module(tmp_path: Path, how: str) -> None:
    generate_videos(tmp_path / "raw", 3, size=16, frames=8, seed=0)
    package = tmp_path / "caller"
    package.mkdir()
    (package / "__init__.py").write_text("")
    marker = tmp_path / "imports.txt"
    script = CALLER.format(marker=str(marker), raw=str(tmp_path / "raw"), out=str(tmp_path / "clips"))
    (package / "stage.py").write_text(script)
    target = ["-m", "caller.stage"] if how == "module" else [str(package / "stage.py")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, *target], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "3"  # both workers decoded: the pool did start
    importers = marker.read_text().split()
    assert len(importers) == 1, f"{len(importers)} processes imported the caller's main module"
