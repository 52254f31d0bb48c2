"""The whole DVC pipeline on a tiny config, in a fresh git + DVC project: repro, no-op repro, partial rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.pipelines.projects import make_project, run


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("e2e"))


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
