"""Preprocess on the real videos of ../shared, and a run killed in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.clips import ClipStore
from pvdm.data.cutting import read_record
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos

KNOWN_FRAMES = {
    "cc0/flower.mp4": 150,
    "cc0/flower.webm": 150,
    "cc0/friday.mp4": 185,
    "cc0/stream-of-water.mp4": 90,
}


@pytest.mark.slow
def test_real_videos_of_several_codecs_and_sizes(shared_videos: Path, tmp_path: Path) -> None:
    data = DataConfig(resolution=32, frames=16)
    report = run_preprocess(
        shared_videos, tmp_path, data, PreprocessConfig(test_fraction=0.2), progress=False
    )
    sources = sorted(p.relative_to(shared_videos).as_posix() for p in shared_videos.rglob("*.m[pk][4v]"))
    sources += ["cc0/flower.webm"]
    assert sorted(v.source for v in report.processed) == sorted(sources) and report.rejected == []
    assert {v.codec for v in report.processed} == {"h264", "vp8"}
    for v in report.processed:
        assert v.clips == v.decoded_frames // 16 >= 2, v
        if v.source in KNOWN_FRAMES:
            assert v.decoded_frames == KNOWN_FRAMES[v.source]
    store = ClipStore(tmp_path)
    m = store.manifest
    assert report.validation["success"] and (m.groupby("source")["split"].nunique() == 1).all()
    assert set(m["split"]) == {"train", "test"}
    first = {s: store[int(m.index[(m["source"] == s) & (m["clip_index"] == 0)][0])] for s in KNOWN_FRAMES}
    # the same film in h264 and in vp8: the clips agree up to compression
    assert np.abs(first["cc0/flower.mp4"].astype(int) - first["cc0/flower.webm"]).mean() < 8
    assert np.abs(first["cc0/flower.mp4"].astype(int) - first["cc0/friday.mp4"]).mean() > 20
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["clips"] == len(store)


@pytest.mark.slow
def test_a_killed_run_leaves_whole_shards_and_the_rerun_finishes(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "clips"
    generate_videos(raw, 12, size=64, frames=96, seed=5)
    data, cfg = DataConfig(resolution=32, frames=8), PreprocessConfig(workers=1)
    code = (
        "from pvdm.config import DataConfig, PreprocessConfig\n"
        "from pvdm.data.preprocess import run_preprocess\n"
        f"run_preprocess({str(raw)!r}, {str(out)!r}, DataConfig(resolution=32, frames=8), "
        "PreprocessConfig(workers=1), progress=False)\n"
    )
    # its own process group, so the kill reaches the decoding workers too
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "shards").glob("*.json")) if (out / "shards").is_dir() else True:
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the run ended before a shard was committed"
            )
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifest.parquet").exists()
    committed = [read_record(p.with_suffix("")) for p in (out / "shards").glob("*.json")]
    assert 1 <= len(committed) < 12 and None not in committed  # a record never exists without its shard
    for record in committed:  # every committed shard is whole
        shard = np.load(
            out / "shards" / f"{record.content_hash[:32]}-{record.fingerprint[:8]}.npy", mmap_mode="r"
        )
        assert shard.shape == (len(record.starts), 8, 32, 32, 3) == (12, 8, 32, 32, 3)

    report = run_preprocess(raw, out, data, cfg, progress=False)
    assert report.reused == len(committed) and report.decoded == 12 - len(committed)
    assert len(ClipStore(out)) == 12 * 12 and report.validation["success"]
    assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]  # leftovers removed
