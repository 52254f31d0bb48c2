"""Imported official weights in the pipeline: the `sample` and `evaluate` stages (`dvc repro -s`) score an imported
pair in a scratch project, an imported autoencoder beside clips of another size is one clear error, and
`pvdm import --register` registers imported checkpoints in MLflow like trained ones."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pvdm.cli import main
from tests.pipelines.projects import make_project, project_env, run
from tests.pipelines.tiny_params import TINY_PARAMS
from tests.pvdm.official_files import FIXTURES, official_file, official_pair


def import_models(models: Path, *sources: str, force: bool = False) -> str:
    result = CliRunner().invoke(
        main, ["import", *sources, "--out", str(models), *(["--force"] if force else [])]
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_sample_and_evaluate_stages_score_imported_models(tmp_path: Path) -> None:
    params = copy.deepcopy(TINY_PARAMS)
    params["data"]["resolution"] = 24  # the imported autoencoder's videos (24 x 24 x 16)
    project = make_project(tmp_path / "project", params, videos=5)
    env = {"PVDM_CACHE_DIR": str(tmp_path / "cache")}  # the I3D weights converted privately
    run(["dvc", "repro", "-s", "preprocess"], project)
    ae_file, unet_file = official_pair(tmp_path / "official")
    models = project / "data" / "models"
    import_models(models, "--pvdm-autoencoder", str(ae_file), "--pvdm-diffusion", str(unet_file))

    run(["dvc", "repro", "-s", "sample"], project, **env)
    run(["dvc", "repro", "-s", "evaluate"], project, **env)
    metrics = json.loads((project / "metrics" / "eval.json").read_text())
    for key in ("fvd_16", "fvd_long", "fvd_noise_latents", "recon_psnr", "recon_fvd"):
        assert math.isfinite(metrics[key]), key
    assert metrics["protocol_fvd_16"]["resolution"] == 24 and metrics["n_fake"] == 3

    # an imported autoencoder of another size (16 x 16 x 8) beside these clips: one line before any scoring
    ae8 = FIXTURES / "pvdm_ae_8frames.pt"
    state = {k: v.float() for k, v in torch.load(ae8, weights_only=True)["state_dict"].items()}
    import_models(models, "--pvdm-autoencoder", str(official_file(tmp_path, state, "ae8.pth")), force=True)
    cmd = [sys.executable, "-m", "pipelines.stages.evaluate"]
    failed = subprocess.run(
        cmd, cwd=project, env=project_env(**env), capture_output=True, text=True, timeout=600
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        "error: data/models/autoencoder.pt makes 8-frame 16 x 16 videos (its recorded data config) but the clip "
        "store holds 16-frame 24 x 24 clips: set data.resolution: 16 and data.frames: 8 in params.yaml and rerun "
        "preprocess, or use an autoencoder made for these clips"
    )
