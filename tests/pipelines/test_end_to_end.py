"""The whole DVC pipeline on a tiny config, in a fresh git + DVC project: repro, no-op repro, partial rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipelines.projects import make_project, run

SECRET = "pLaNtEd-SeCrEt-4242"
# Credentials a user's environment may hold while the pipeline runs: none may reach what the pipeline writes.
PLANTED = {
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_ACCESS_KEY_ID": f"AKIA{SECRET}",
    "MLFLOW_TRACKING_PASSWORD": SECRET,
    "PVDM_DB_URL": f"postgresql://pvdm:{SECRET}@127.0.0.1/pvdm",
}


def secrets_written(project: Path) -> list[str]:
    """Files under the project (the MLflow store and artifacts, dvc.lock, metrics, reports, samples' records,
    logs) that contain the planted secret; the code and the raw videos are not the pipeline's writing."""
    skip = {".git", ".dvc", "pvdm", "pipelines", "raw"}
    written = (
        p for p in project.rglob("*") if p.is_file() and not skip.intersection(p.relative_to(project).parts)
    )
    return [str(p.relative_to(project)) for p in written if SECRET.encode() in p.read_bytes()]


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("e2e"))


@pytest.mark.slow
def test_dvc_pipeline_end_to_end_with_experiments_metrics_and_plots(project: Path) -> None:
    first = run(["dvc", "repro"], project, **PLANTED)
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
        "motion_ratio",
        "fvd_ratio_to_noise",
    ):
        assert key in metrics, key
    assert metrics["n_fake"] == 3 and metrics["detector_sha256"]
    assert len(list((project / "data" / "samples" / "clips").glob("*.mp4"))) == 3
    assert len(list((project / "data" / "samples" / "long").glob("*.mp4"))) == 2
    assert (project / "data" / "samples" / "preview.gif").is_file()
    assert (project / "plots" / "diffusion.csv").read_text().startswith("step,")

    assert not secrets_written(project), "a planted credential reached a file the pipeline wrote"

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first run"], project)
    assert ran_stages(run(["dvc", "repro"], project)) == []  # nothing changed: nothing runs

    exp = run(["dvc", "exp", "run", "-S", "diffusion.train.lr=0.002"], project)
    assert ran_stages(exp) == ["train_diffusion", "sample", "evaluate"]  # only the diffusion stages onward
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project))
    assert "0.002" in json.dumps(shown)
    assert "fvd_16" in run(["dvc", "metrics", "diff", "--all"], project)
    run(["dvc", "plots", "show", "-o", "dvc_plots"], project)
    assert (project / "dvc_plots" / "index.html").is_file()
