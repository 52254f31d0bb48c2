"""bench.loader at a minimal size: its clip store reads back, and forked loader workers read it as the main process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.loader import measure, write_clip_store
from pvdm.config.training import TrainConfig
from pvdm.data.clips import ClipDataset, ClipStore
from pvdm.training.data import collate_clips, training_loader
from pvdm.training.loop import LocalContext

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_bench_store_is_a_clip_store_and_workers_read_it_like_the_main_process(tmp_path: Path) -> None:
    root = write_clip_store(tmp_path / "clips", clips=20, frames=2, size=8)  # two shards: 16 + 4 clips
    store = ClipStore(root)
    assert len(store) == 20 and store.frames == 2 and store[19].shape == (2, 8, 8, 3)
    assert store.previous_clip(17) == 16 and store.previous_clip(16) is None  # shards are back-to-back clips
    assert np.array_equal(store[17], np.load(root / "shards" / "bench0001.npy")[1])

    dataset = ClipDataset(root)
    ctx = LocalContext(tmp_path / "unused")
    read = {
        workers: [b.data for b in training_loader(dataset, collate_clips, TrainConfig(steps=5, loader_workers=workers),
                                                  ctx, per_rank=4, seed=0, start=1)]
        for workers in (0, 2)
    }  # fmt: skip
    assert len(read[0]) == 4 and all(torch.equal(a, b) for a, b in zip(read[0], read[2], strict=True))


def test_the_bench_measures_every_worker_count(tmp_path: Path) -> None:
    dataset = ClipDataset(write_clip_store(tmp_path / "clips", clips=4, frames=2, size=8))
    rates = [measure(dataset, workers, batch=2, batches=1, device=torch.device("cpu")) for workers in (0, 1)]
    assert [r.workers for r in rates] == [0, 1] and all(
        r.clips_per_s > 0 and r.first_batch_s > 0 for r in rates
    )
