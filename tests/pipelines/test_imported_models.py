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

import mlflow
import mlflow.pytorch
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, CHECKPOINT_FILES, DIFFUSION, download_checkpoint
from pipelines.cli import main
from pvdm.checkpoint import load_checkpoint
from pvdm.families.registry import load_autoencoder, load_diffusion
from pvdm.hashing import sha256_file
from tests.pipelines.projects import make_project, project_env, run
from tests.pipelines.tiny_params import TINY_PARAMS
from tests.pvdm.official_files import FIXTURES, PAIR_LATENT, official_file, official_pair


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


@pytest.fixture
def project_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A project folder with no MLflow server: `pvdm import --register` uses its SQLite store, as the stages do."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PVDM_ROOT", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def test_import_register_makes_versions_like_trained_ones(
    tmp_path: Path, project_store: MlflowClient
) -> None:
    client = project_store
    ae_file, unet_file = official_pair(tmp_path / "official")
    models = tmp_path / "data" / "models"
    output = import_models(models, "--pvdm-autoencoder", str(ae_file), "--pvdm-diffusion", str(unet_file),
                           "--register")  # fmt: skip
    assert "registered pvdm-autoencoder v1" in output and "registered pvdm-diffusion v1" in output
    sources = {AUTOENCODER: ae_file, DIFFUSION: unet_file}
    families = {AUTOENCODER: "triplane", DIFFUSION: "triplane_unet"}  # the checkpoints' `family` records
    z = torch.randn(2, 4, PAIR_LATENT.length)
    for name, source in sources.items():
        version = client.get_model_version(name, "1")
        tags = version.tags
        assert tags["pvdm.imported_from"] == source.name and tags["pvdm.source_sha256"] == sha256_file(source)
        assert tags["pvdm.family"] == families[name]
        assert not any(str(tmp_path) in value for value in tags.values())  # a file name, never its folder
        run = client.get_run(version.run_id)
        assert run.data.tags["pvdm.kind"] == "import"
        assert (
            run.data.params["source.sha256"] == sha256_file(source)
            and run.data.params["family"] == families[name]
        )
        # the checkpoint a champion download reads: the one pvdm import wrote
        got = download_checkpoint(client, version, tmp_path / "download" / name)
        assert sha256_file(got.path) == sha256_file(models / CHECKPOINT_FILES[name])
        loaded = mlflow.pytorch.load_model(f"models:/{name}/1")  # the logged model, as serving loads it
        payload = load_checkpoint(models / CHECKPOINT_FILES[name])
        with torch.no_grad():
            if name == AUTOENCODER:
                assert run.data.params["autoencoder.model.layout"] == "official"
                assert torch.equal(loaded.decode(z), load_autoencoder(payload).decode(z))
            else:
                assert run.data.params["diffusion.denoiser.layout"] == "official"
                t = torch.tensor([10, 900])
                assert torch.equal(loaded(z, t), load_diffusion(payload).model(z, t))

    again = import_models(models, "--pvdm-diffusion", str(unet_file), "--register", force=True)
    assert "registered pvdm-diffusion v2" in again
