"""`pvdm fvd REAL FAKE`: two folders of videos in, an FVD and its protocol record out; real stats cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pvdm.cli import main
from pvdm.data.video import write_video


def write_videos(folder, seed: int, n: int, frames: int = 16, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, size=(1, size, size, 3))
        drift = rng.integers(-20, 20, size=(frames, 1, 1, 3)).cumsum(axis=0)
        write_video(folder / f"v{i}.mp4", np.clip(base + drift, 0, 255).astype(np.uint8), fps=8)


@pytest.mark.slow
def test_fvd_between_two_folders(tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    write_videos(real, seed=0, n=2, frames=24)  # 2 videos for 4 clips: 2 windows each, spread over 24 frames
    write_videos(fake, seed=1, n=4)
    args = [
        str(real),
        str(fake),
        "--frames",
        "8",
        "--num",
        "4",
        "--no-progress",
        "--json",
        str(tmp_path / "fvd.json"),
    ]
    runner = CliRunner()
    first = runner.invoke(main, ["fvd", *args])
    assert first.exit_code == 0, first.output
    record = json.loads((tmp_path / "fvd.json").read_text())
    assert f"FVD: {record['fvd']:.4f}" in first.output
    assert (record["n_real"], record["n_fake"], record["frames"], record["resolution"]) == (4, 4, 8, 32)
    assert record["detector"] == "i3d_kinetics400_logits" and len(record["detector_sha256"]) == 64
    assert record["real_stats_cached"] is False and record["fvd"] > 0

    second = runner.invoke(main, ["fvd", *args])
    assert second.exit_code == 0, second.output
    cached = json.loads((tmp_path / "fvd.json").read_text())
    assert cached["real_stats_cached"] is True
    assert cached["fvd"] == pytest.approx(record["fvd"], rel=1e-9)
    assert record["window_seed"] == 0 and record["window_rule"].startswith("stylegan-v")

    other = runner.invoke(
        main, ["fvd", *args, "--seed", "1"]
    )  # other real windows: not the cached statistics
    assert other.exit_code == 0, other.output
    reseeded = json.loads((tmp_path / "fvd.json").read_text())
    assert reseeded["real_stats_cached"] is False and reseeded["window_seed"] == 1


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    write_videos(tmp_path / "fake", seed=1, n=1)
    result = CliRunner().invoke(
        main, ["fvd", str(tmp_path / "empty"), str(tmp_path / "fake"), "--no-progress"]
    )
    assert result.exit_code != 0
    assert "no video files" in result.output
