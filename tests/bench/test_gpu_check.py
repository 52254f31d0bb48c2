"""bench.gpu_check: the verdict and the rates it reports (the GPU run itself needs a GPU: see bench/README.md)."""

from __future__ import annotations

import pytest
import torch

from bench import gpu_check
from bench.loader import LoaderRate


def test_training_rates_are_clips_per_second_per_gpu_of_each_training_step() -> None:
    results = [
        {"kind": "ae", "per_clip_s": 0.25},
        {"kind": "unet", "per_clip_s": 0.02},
        {"kind": "sample", "video_s": 7.9},
        {"kind": "ae", "error": "out of memory", "oom": True},
    ]
    assert gpu_check.training_rates(results) == {"ae": 4.0, "unet": 50.0}


def test_the_report_says_whether_each_loader_setting_feeds_the_autoencoder_step() -> None:
    text = gpu_check.report({"ae": 40.0}, [LoaderRate(0, 0.1, 20.0), LoaderRate(4, 0.5, 120.0)], "H200")
    assert "| 0 | 20.0 | 0.10 s | the GPU waits: the loader gives 50% of what the step takes |" in text
    assert "| 4 | 120.0 | 0.50 s | keeps up (3.0x what the step takes) |" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_stops_at_once_and_says_where_cpu_figures_are(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit, match="needs a CUDA GPU; on CPU run bench.models and bench.loader"):
        gpu_check.main(["--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())
