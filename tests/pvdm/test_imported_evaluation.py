"""After `pvdm import` of the official autoencoder fixture and an official-format UNet, the ordinary commands run
unchanged: `pvdm sample` draws videos and `pvdm fvd` scores them against real videos with the real I3D weights.

(The evaluate stage on imported models: tests/pipelines/test_imported_models.py.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from pvdm.cli import main
from pvdm.data.synthetic import generate_videos
from pvdm.data.video import probe
from tests.pvdm.official_files import official_pair


@pytest.fixture
def private_weight_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The converted I3D weights go to a private cache, never the user's ~/.cache/pvdm."""
    monkeypatch.setenv("PVDM_CACHE_DIR", str(tmp_path_factory.mktemp("pvdm-cache")))


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_imported_pair_samples_and_scores_with_pvdm_fvd(
    tmp_path: Path, private_weight_cache: None, one_thread: None
) -> None:
    ae_file, unet_file = official_pair(tmp_path / "official")
    models = tmp_path / "models"
    invoke(
        [
            "import",
            "--pvdm-autoencoder",
            str(ae_file),
            "--pvdm-diffusion",
            str(unet_file),
            "--out",
            str(models),
        ]
    )
    fake = tmp_path / "fake"
    invoke(["sample", "--autoencoder", str(models / "autoencoder.pt"), "--diffusion", str(models / "diffusion.pt"),
            "--num", "4", "--steps", "2", "--out", str(fake / "sample.mp4"), "--device", "cpu"])  # fmt: skip
    videos = sorted(fake.glob("sample_*.mp4"))
    assert len(videos) == 4
    assert {(probe(v).frames, probe(v).width) for v in videos} == {(16, 24)}  # the imported model's clips
    real = tmp_path / "real"
    generate_videos(real, 4, size=24, frames=16, fps=8, seed=1)
    record_file = tmp_path / "fvd.json"
    output = invoke(["fvd", str(real), str(fake), "--num", "4", "--no-progress", "--device", "cpu",
                     "--json", str(record_file)])  # fmt: skip
    record = json.loads(record_file.read_text())
    assert f"FVD: {record['fvd']:.4f}" in output
    assert math.isfinite(record["fvd"]) and record["fvd"] > 0
    assert (record["n_real"], record["n_fake"], record["frames"]) == (4, 4, 16)
