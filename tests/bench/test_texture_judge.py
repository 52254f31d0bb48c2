"""bench.texture_judge: its training clips come through the real preprocess stage, labelled like the demo's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.texture_judge import CLASSES, FrameTextureNet, TextureJudge, _augment, render_training_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rendered_clips_have_the_stores_geometry_and_both_classes(tmp_path: Path) -> None:
    clips, labels, names = render_training_clips(4, resolution=16, frames=8, workdir=tmp_path)
    assert set(names) == CLASSES
    assert clips.shape == (8, 8, 16, 16, 3) and clips.dtype == np.uint8  # two clips per video
    assert sorted(set(labels.tolist())) == [0, 1]


def test_augmentation_keeps_frames_and_their_values() -> None:
    x = torch.rand(5, 3, 16, 16)
    y = _augment(x, torch.Generator().manual_seed(3))
    assert y.shape == x.shape
    # flips, quarter turns and channel orders only move values around
    assert torch.allclose(x.flatten().sort().values, y.flatten().sort().values)


def test_the_judge_gives_one_class_per_clip() -> None:
    judge = TextureJudge(FrameTextureNet(len(CLASSES), width=8))
    pred = judge.predict(np.zeros((8, 16, 16, 3), np.uint8) for _ in range(3))
    assert pred.shape == (3,) and set(pred.tolist()) <= {0, 1}
