from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pvdm.data.synthetic import generate_videos, render_video
from pvdm.data.video import probe, read_video


def test_same_seed_same_videos_and_each_video_independent_of_the_count(tmp_path: Path) -> None:
    for i in range(3):  # the pixels are a function of (seed, index) alone
        a, b = (render_video(np.random.default_rng([7, i]), size=32, frames=12) for _ in range(2))
        np.testing.assert_array_equal(a, b)
    a = generate_videos(tmp_path / "a", 3, size=32, frames=12, seed=7)
    b = generate_videos(tmp_path / "b", 2, size=32, frames=12, seed=7)
    c = generate_videos(tmp_path / "c", 1, size=32, frames=12, seed=8)
    assert [p.name for p in a] == ["synth_0000.mp4", "synth_0001.mp4", "synth_0002.mp4"]
    for x, y in zip(a, b, strict=False):
        # same pixels in; x264 now and then makes other encoding decisions (a few runs in 10 here): same content
        assert np.abs(read_video(x).astype(int) - read_video(y)).mean() < 3
    assert np.abs(read_video(a[0]).astype(int) - read_video(c[0])).mean() > 10


def test_videos_are_real_mp4_with_varied_motion(tmp_path: Path) -> None:
    paths = generate_videos(tmp_path, 8, size=48, frames=24, fps=12.0, seed=0)
    info = probe(paths[0])
    assert (info.codec, info.width, info.height, info.frames, info.fps) == ("h264", 48, 48, 24, 12.0)
    motion = []
    for path in paths:
        v = read_video(path).astype(np.float32)
        assert v.std() > 10  # textured, not flat
        step = np.abs(np.diff(v, axis=0)).mean(axis=(1, 2, 3))  # per-frame change
        assert (step > 0.2).all()  # something moves in every frame
        motion.append(step.mean())
    assert max(motion) > 1.5 * min(motion)  # speeds differ between videos


def test_demo_sized_dataset_in_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = generate_videos(tmp_path, 24, size=64, frames=64, seed=1)
    assert len(paths) == 24 and time.perf_counter() - start < 30  # about 2 s on an idle 2-core machine
