"""The VIDM family through the whole DVC pipeline at tiny size (its one end-to-end run): the identity autoencoder
trains nothing and caches a manifest, both generators train on Ray as one model, the sample and evaluate stages
draw frame by frame, and `pvdm sample --frames` draws a video longer than a clip from the trained model."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from pvdm.data.video import read_video
from tests.pipelines.projects import make_project, run
from tests.pipelines.test_end_to_end import ran_stages
from tests.pipelines.tiny_params import TINY_PARAMS

TINY_VIDM = copy.deepcopy(TINY_PARAMS) | {
    "autoencoder": {"model": {"type": "identity"}},
    "diffusion": {
        "denoiser": {"type": "vidm", "model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                     "attention_resolutions": [2], "num_heads": 2, "norm_groups": 4,
                     "flow": {"levels": 2, "widths": [4, 4], "kernel": 3}},
        "process": {"timesteps": 100, "schedule": "ddpm_linear", "beta_start": 0.0001, "beta_end": 0.02},
        "train": {"steps": 6, "batch_size": 4, "lr": 0.001, "checkpoint_every": 6, "log_every": 3,
                  "jitter_windows": 0},
    },
    "sample": TINY_PARAMS["sample"] | {"sampler": "ddpm", "steps": 3},
}  # fmt: skip


@pytest.mark.slow
def test_vidm_runs_through_every_stage_and_samples_any_length(tmp_path: Path) -> None:
    project = make_project(tmp_path / "vidm", TINY_VIDM, videos=4)
    assert ran_stages(run(["dvc", "repro"], project)) == [
        "preprocess", "train_autoencoder", "cache_latents", "train_diffusion", "sample", "evaluate"
    ]  # fmt: skip
    assert not (project / "data" / "latents" / "latents.npy").exists()  # a manifest, not a copy of the clips
    with open(project / "plots" / "diffusion.csv") as f:
        header = next(csv.reader(f))
    assert {"content_loss", "motion_loss", "loss"} <= set(header)
    metrics = json.loads((project / "metrics" / "eval.json").read_text())
    assert metrics["n_fake"] == 3 and metrics["motion_fake"] > 0 and metrics["fvd_noise_latents"] > 0
    longs = sorted((project / "data" / "samples" / "long").glob("*.mp4"))
    assert len(longs) == 2 and read_video(longs[0]).shape[0] == 32  # 2 clips' worth, drawn frame by frame

    out = project / "by_hand.mp4"
    run(["pvdm", "sample", "--frames", "21", "--steps", "2", "--sampler", "ddpm", "--out", str(out)], project)
    assert read_video(out).shape[:3] == (21, 16, 16)
