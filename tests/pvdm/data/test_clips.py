from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pvdm.config import PreprocessConfig
from pvdm.data.clips import ClipDataset, ClipStore, from_model_tensor, to_model_tensor
from pvdm.data.cutting import CutSpec, clip_starts, clip_stats
from pvdm.data.report import PreprocessReport
from pvdm.data.video import read_video
from tests.pvdm.data.conftest import SYNTH_FRAMES, TINY


def test_store_holds_the_decoded_frames_of_each_clip(
    synthetic_store: tuple[Path, PreprocessReport], synthetic_raw: Path
) -> None:
    root, _ = synthetic_store
    store = ClipStore(root)
    assert len(store) == 6 * SYNTH_FRAMES // TINY.frames
    for i in (0, 7, len(store) - 1):
        row = store.manifest.iloc[i]
        clip = store[i]
        assert clip.dtype == np.uint8 and clip.shape == (8, 32, 32, 3)
        source = read_video(synthetic_raw / row["source"])  # 32x32 already: no resize, no crop
        np.testing.assert_array_equal(clip, source[row["start_frame"] : row["start_frame"] + 8])
    assert isinstance(store[0], np.memmap) or isinstance(store[0].base, np.memmap)


def test_manifest_columns_and_split_by_video(synthetic_store: tuple[Path, PreprocessReport]) -> None:
    m = ClipStore(synthetic_store[0]).manifest
    assert m["clip_id"].is_unique and not m.isna().any().any()
    assert (m.groupby("source")["split"].nunique() == 1).all()
    assert set(m["split"]) == {"train", "test"}
    assert m["fps"].eq(12.0).all() and m["duration"].eq(8 / 12.0).all()
    store = ClipStore(synthetic_store[0])
    assert sorted(store.indices("train") + store.indices("test")) == list(range(len(store)))


def test_previous_clip_is_the_one_ending_where_a_clip_starts(
    synthetic_store: tuple[Path, PreprocessReport],
) -> None:
    store = ClipStore(synthetic_store[0])
    m = store.manifest
    for i in range(len(store)):
        j = store.previous_clip(i)
        if m["start_frame"].iloc[i] == 0:
            assert j is None
        else:
            assert m["source"].iloc[j] == m["source"].iloc[i]
            assert m["start_frame"].iloc[j] + 8 == m["start_frame"].iloc[i]
            assert store.next_clip(j) == i
    pairs = store.pairs("train") + store.pairs("test")
    assert len(pairs) == 6 * (SYNTH_FRAMES // 8 - 1)


def test_clip_starts_follow_stride_step_and_limit() -> None:
    spec = CutSpec(
        32, frames=4, frame_stride=2, step=8, max_clips=0, min_size=8, max_aspect_ratio=3, min_clip_std=1
    )
    assert spec.span == 7 and clip_starts(30, spec) == [0, 8, 16]
    assert clip_starts(6, spec) == []
    limited = CutSpec(32, 4, 1, 2, max_clips=2, min_size=8, max_aspect_ratio=3, min_clip_std=1)
    assert clip_starts(30, limited) == [0, 2]
    assert PreprocessConfig(frame_stride=2).step(16) == 32 and PreprocessConfig(clip_step=4).step(16) == 4


def test_dataset_gives_model_tensors(synthetic_store: tuple[Path, PreprocessReport]) -> None:
    train = ClipDataset(synthetic_store[0], "train")
    x = train[0]
    assert x.dtype == torch.float32 and x.shape == (3, 8, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(from_model_tensor(x), train.store[train.indices[0]])
    batch = next(iter(DataLoader(train, batch_size=4, shuffle=True)))
    assert batch.shape == (4, 3, 8, 32, 32)
    with pytest.raises(ValueError, match="no clips in split 'valid'"):
        ClipDataset(synthetic_store[0], "valid")


def test_model_tensor_round_trip_is_exact() -> None:
    clip = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(from_model_tensor(to_model_tensor(clip)), clip)


def test_opening_something_else_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a clip store"):
        ClipStore(tmp_path)


def test_clip_stats_estimate_mean_std_but_decide_constancy_exactly() -> None:
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    lo, hi, mean, std = clip_stats(clip)
    assert (lo, hi) == (clip.min(), clip.max())
    assert mean == pytest.approx(clip.mean(), abs=3) and std == pytest.approx(clip.std(), rel=0.05)
    sparse = np.zeros((8, 8, 8, 3), np.uint8)
    sparse[1, 1, 1] = 200  # outside the sampled pixels: the exact pass must see it
    assert clip_stats(sparse) == [
        0,
        200,
        pytest.approx(sparse.mean(), abs=1e-3),
        pytest.approx(sparse.std(), abs=1e-3),
    ]
    assert clip_stats(np.full((8, 8, 8, 3), 7, np.uint8)) == [7, 7, 7.0, 0.0]
