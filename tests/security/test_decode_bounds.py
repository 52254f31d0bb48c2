"""Untrusted videos cannot exhaust the machine: size, frame, pixel and duration bounds, streaming PyAV, a timeout."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pytest

from bench.decode_bounds import write_torn_solid_video
from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data import preprocess as pp
from pvdm.data.cutting import Job, cut_source
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.data.video import DecodeLimits

DATA = DataConfig(resolution=32, frames=8)


@pytest.fixture(scope="module")
def small_and_big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small.mp4: 32x32, 48 frames at 16 fps (3 s); big.mp4: 64x64, 96 frames (6 s)."""
    raw = tmp_path_factory.mktemp("raw")
    (small,) = generate_videos(raw / "a", 1, size=32, frames=48, fps=16, seed=0)
    (big,) = generate_videos(raw / "b", 1, size=64, frames=96, fps=16, seed=1)
    small.rename(raw / "small.mp4")
    big.rename(raw / "big.mp4")
    shutil.rmtree(raw / "a"), shutil.rmtree(raw / "b")
    return raw


def _bounded(raw: Path) -> dict[str, dict]:
    small, big = (raw / "small.mp4").stat().st_size, (raw / "big.mp4").stat().st_size
    assert small < big
    return {
        "max_file_bytes": {"max_file_bytes": (small + big) // 2},
        "max_frames": {"max_frames": 60},
        "max_pixels": {"max_pixels": 32 * 32},
        "max_duration_s": {"max_duration_s": 4.5},
    }


@pytest.mark.parametrize("bound", ["max_file_bytes", "max_frames", "max_pixels", "max_duration_s"])
def test_a_video_over_a_bound_is_reported_and_skipped_and_the_others_processed(
    small_and_big: Path, tmp_path: Path, bound: str
) -> None:
    cfg = PreprocessConfig(test_fraction=0.0, max_rejected_fraction=1.0, **_bounded(small_and_big)[bound])
    report = run_preprocess(small_and_big, tmp_path / "clips", DATA, cfg, progress=False)
    assert [v.source for v in report.processed] == ["small.mp4"]
    [rejected] = report.rejected
    assert rejected["source"] == "big.mp4" and f"preprocess.{bound}" in rejected["reason"], rejected
    # raised limits give the rejected video another try (its rejection is not reused)
    again = run_preprocess(
        small_and_big, tmp_path / "clips", DATA, PreprocessConfig(test_fraction=0.0), progress=False
    )
    assert sorted(v.source for v in again.processed) == ["big.mp4", "small.mp4"] and not again.rejected


def test_the_pyav_fallback_streams_a_long_torn_video_instead_of_holding_it(tmp_path: Path) -> None:
    # decord refuses the torn tail mid-file; PyAV decodes it. Held in memory whole, its 600 frames at 85x64 would
    # take 9.8 MB; streamed, about one 8-frame clip (130 KB) plus the decoder's own buffers.
    video = write_torn_solid_video(tmp_path / "torn.mp4", frames=600, size=(160, 120))
    spec = pp.cut_spec(DataConfig(resolution=64, frames=8), PreprocessConfig(min_clip_std=0.0))
    job = Job(str(video), video.name, "hash", str(tmp_path / "shard"), "fp", spec)
    tracemalloc.start()
    try:
        record = cut_source(job)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not record.rejected and record.backend == "pyav", record
    assert any(n.startswith("truncated") for n in record.notes) and 400 <= record.decoded_frames < 600
    assert len(record.starts) == record.decoded_frames // 8
    assert peak < 2.5 * 2**20, f"peak traced memory {peak / 2**20:.1f} MB"


def test_a_frame_count_over_the_bound_is_caught_while_pyav_decodes(tmp_path: Path) -> None:
    video = write_torn_solid_video(tmp_path / "torn.mp4", frames=300, size=(64, 48))
    spec = pp.cut_spec(DataConfig(resolution=32, frames=8), PreprocessConfig(min_clip_std=0.0))
    limits = DecodeLimits(max_frames=100)
    record = cut_source(Job(str(video), video.name, "hash", str(tmp_path / "shard"), "fp", spec, limits))
    assert "preprocess.max_frames" in record.rejected, record.rejected


def test_a_hung_decoder_is_abandoned_after_the_timeout_and_the_others_processed(
    small_and_big: Path, tmp_path: Path
) -> None:
    from tests.security.hangs import work

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("small.mp4", "big.mp4"):
        shutil.copyfile(small_and_big / name, raw / name)
    shutil.copyfile(small_and_big / "small.mp4", raw / "hang.mp4")
    spec = pp.cut_spec(DATA, PreprocessConfig())
    limits = DecodeLimits(timeout_s=3.0)
    jobs = [
        Job(str(raw / n), n, n, str(tmp_path / n), "fp", spec, limits)
        for n in ("hang.mp4", "small.mp4", "big.mp4")
    ]
    records = pp._decode_in_parallel(jobs, workers=2, progress=False, work=work)
    assert "preprocess.decode_timeout_s" in records[str(tmp_path / "hang.mp4")].rejected
    assert [len(records[str(tmp_path / n)].starts) for n in ("small.mp4", "big.mp4")] == [6, 12]
    assert not list(tmp_path.glob(".*.partial"))
