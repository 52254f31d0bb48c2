"""The whole DVC pipeline on a tiny config, in a fresh git + DVC project: repro, no-op repro, partial rerun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pvdm.data.synthetic import generate_videos
from tests.pipelines.tiny_params import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PVDM_PIPELINE_ID": "e2e",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout + result.stderr


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's pipeline (code, dvc.yaml) with tiny params and a few synthetic videos."""
    dest = tmp_path_factory.mktemp("e2e")
    for item in ("dvc.yaml", "pvdm", "pipelines"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    (dest / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    generate_videos(dest / "data" / "raw", 5, size=32, frames=48, fps=8, seed=1)
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    return dest


@pytest.mark.slow
def test_dvc_pipeline_runs_end_to_end_and_reruns_only_what_changed(project: Path) -> None:
    first = run(["dvc", "repro"], project)
    stages = ["preprocess", "train_autoencoder", "cache_latents", "train_diffusion", "sample", "evaluate"]
    assert ran_stages(first) == stages

    metrics = json.loads((project / "metrics" / "eval.json").read_text())
    for key in (
        "fvd_16",
        "fvd_long",
        "recon_psnr",
        "recon_ssim",
        "recon_lpips",
        "recon_fvd",
        "n_real",
        "n_fake",
        "detector",
        "detector_sha256",
        "motion_real",
        "motion_fake",
        "fvd_noise_latents",
    ):
        assert key in metrics, key
    assert metrics["n_fake"] == 3 and metrics["detector_sha256"]
    assert len(list((project / "data" / "samples" / "clips").glob("*.mp4"))) == 3
    assert len(list((project / "data" / "samples" / "long").glob("*.mp4"))) == 2
    assert (project / "data" / "samples" / "preview.gif").is_file()
    assert (project / "plots" / "diffusion.csv").read_text().startswith("step,")

    assert ran_stages(run(["dvc", "repro"], project)) == []  # nothing changed: nothing runs

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["diffusion"]["train"]["lr"] = 0.002
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert ran_stages(run(["dvc", "repro"], project)) == ["train_diffusion", "sample", "evaluate"]
