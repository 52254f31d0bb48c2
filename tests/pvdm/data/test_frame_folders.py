"""Videos stored as folders of numbered frames (SkyTimelapse, StyleGAN-V / DIGAN layout) in preprocess and pvdm fvd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.clips import ClipStore
from pvdm.data.frame_folders import folder_digest, frame_files, natural_key
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos, render_video
from pvdm.metrics.folders import folder_hash, folder_windows, list_videos

DATA = DataConfig(resolution=32, frames=8)


def write_frames(folder: Path, video: np.ndarray, fmt: str = "png") -> Path:
    """Frames named 1.png ... N.png (unpadded numbers: only natural order reads them right)."""
    folder.mkdir(parents=True)
    for i, frame in enumerate(video, start=1):
        Image.fromarray(frame).save(folder / f"{i}.{fmt}")
    return folder


def test_natural_order_reads_unpadded_frame_numbers() -> None:
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "Frame_3.png"]
    assert sorted(names, key=natural_key) == ["frame_1.png", "frame_2.png", "Frame_3.png", "frame_10.png"]


def test_frame_folders_are_videos_in_preprocess_with_their_given_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    train = render_video(rng, size=32, frames=24)
    write_frames(raw / "train" / "sky_a" / "clip_0", train)
    write_frames(raw / "val" / "sky_b" / "clip_0", render_video(rng, size=32, frames=16), fmt="jpg")
    (raw / "train" / "sky_a" / "clip_0" / "notes.txt").write_text("not a frame")
    cfg = PreprocessConfig(frame_folder_fps=30.0)
    report = run_preprocess(raw, tmp_path / "clips", DATA, cfg, progress=False)
    processed = {v.source: v for v in report.processed}
    assert set(processed) == {"train/sky_a/clip_0", "val/sky_b/clip_0"} and not report.rejected
    assert report.split_source.startswith("folders")
    assert (processed["train/sky_a/clip_0"].split, processed["val/sky_b/clip_0"].split) == ("train", "test")
    store = ClipStore(tmp_path / "clips")
    rows = store.manifest[store.manifest["source"] == "train/sky_a/clip_0"]
    assert rows["start_frame"].tolist() == [0, 8, 16]
    # png frames at the clip size are stored as they are: frame order is the natural order 1, 2, ..., 24
    np.testing.assert_array_equal(store[int(rows.index[1])], train[8:16])


def test_a_corrupt_frame_rejects_its_folder_naming_the_frame_and_the_others_go_on(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    write_frames(raw / "good", render_video(rng, size=32, frames=16))
    broken = write_frames(raw / "broken", render_video(rng, size=32, frames=16))
    (broken / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cfg = PreprocessConfig(test_fraction=0.0, max_rejected_fraction=1.0)
    report = run_preprocess(raw, tmp_path / "clips", DATA, cfg, progress=False)
    assert [v.source for v in report.processed] == ["good"]
    [rejected] = report.rejected
    assert rejected["source"] == "broken" and "5.png" in rejected["reason"], rejected


def test_a_frame_folder_over_the_frame_bound_is_skipped(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_frames(raw / "long", render_video(np.random.default_rng(2), size=32, frames=20))
    generate_videos(raw, 1, size=32, frames=8, seed=0)
    cfg = PreprocessConfig(test_fraction=0.0, max_rejected_fraction=1.0, max_frames=10)
    report = run_preprocess(raw, tmp_path / "clips", DATA, cfg, progress=False)
    assert [v.source for v in report.processed] == ["synth_0000.mp4"]
    [rejected] = report.rejected
    assert rejected["source"] == "long" and "preprocess.max_frames" in rejected["reason"]


def test_pvdm_fvd_reads_frame_folders_by_the_window_rule(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    videos = {name: render_video(rng, size=32, frames=20) for name in ("a", "b", "c")}
    for name, video in videos.items():
        write_frames(tmp_path / "real" / name, video)
    generate_videos(tmp_path / "real" / "files", 1, size=32, frames=20, seed=0)
    found = list_videos(tmp_path / "real")
    assert [p.relative_to(tmp_path / "real").as_posix() for p in found] == ["a", "b", "c", "files/synth_0000.mp4"]
    clips = list(folder_windows(tmp_path / "real", frames=8, num=4, seed=0))
    assert len(clips) == 4 and all(c.shape == (8, 32, 32, 3) for c in clips)
    from_frames = [c for c in clips if any(_is_window_of(c, v) for v in videos.values())]
    assert len(from_frames) == 3  # one window per frame-folder video, read exactly (png is lossless)
    before = folder_hash(tmp_path / "real")
    Image.fromarray(videos["a"][0][::-1].copy()).save(tmp_path / "real" / "a" / "1.png")
    assert folder_hash(tmp_path / "real") != before and len(frame_files(tmp_path / "real" / "a")) == 20
    assert folder_digest(tmp_path / "real" / "a") != folder_digest(tmp_path / "real" / "b")


def _is_window_of(clip: np.ndarray, video: np.ndarray) -> bool:
    return any(np.array_equal(clip, video[s : s + len(clip)]) for s in range(len(video) - len(clip) + 1))


def test_a_single_image_in_a_folder_is_not_a_video(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_frames(raw / "still", render_video(np.random.default_rng(4), size=32, frames=1))
    generate_videos(raw, 1, size=32, frames=16, seed=0)
    report = run_preprocess(raw, tmp_path / "clips", DATA, PreprocessConfig(test_fraction=0.0), progress=False)
    assert [v.source for v in report.processed] == ["synth_0000.mp4"]
    assert [r["source"] for r in report.ignored] == ["still/1.png"]
