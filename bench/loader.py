"""Clips per second the training data loader delivers, by number of loader worker processes.

    uv run --frozen python -m bench.loader [--workers 0 1 2] [--batch 8] [--batches 8] [--repeats 3] [--step-seconds S]

Writes a temporary clip store at the paper's clip size (16 frames x 256 x 256 x 3 uint8, random pixels, shards of 16
clips laid out as `pvdm preprocess` writes them), then, for each `--workers` count, reads it through the loader the
training loops use (pvdm.training.data.training_loader over ClipDataset: memory-mapped uint8 -> float32
(3, T, H, W) in [-1, 1], batches stacked in the worker, then moved to `--device`). Each count runs in this process
`--repeats` times, the counts alternating, and the best is kept (other work on a shared machine only slows a run).
A run times `--batches` batches after a warm-up: the first batch, which includes forking the workers (its time is
printed apart), and the batches the workers read ahead meanwhile. The loop takes each batch as fast as it comes,
doing nothing else: this is what the loader can deliver, not what it delivers beside a training step that competes
for the same cores.

The shards were just written, so they sit in the page cache: the figure is decoding, collating and passing batches
between processes, not reading a disk. `--step-seconds S` (the measured seconds of one training step at this batch,
e.g. from bench.models or a GPU run) adds how many such steps per second each loader could feed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvdm.config.training import TrainConfig
from pvdm.data.clips import ClipDataset
from pvdm.data.layout import MANIFEST, MANIFEST_COLUMNS, SHARD_DIR, UNLABELLED
from pvdm.training.data import PREFETCH, collate_clips, training_batches
from pvdm.training.loop import LocalContext

CLIPS_PER_SHARD = 16


def write_clip_store(root: Path, clips: int, frames: int = 16, size: int = 256, seed: int = 0) -> Path:
    """A clip store of `clips` random uint8 (frames, size, size, 3) clips, all in the train split: shards of
    CLIPS_PER_SHARD back-to-back clips of one 'video' each, and the manifest ClipStore reads."""
    rng = np.random.default_rng(seed)
    (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    rows = []
    for video, first in enumerate(range(0, clips, CLIPS_PER_SHARD)):
        n = min(CLIPS_PER_SHARD, clips - first)
        shard = f"{SHARD_DIR}/bench{video:04d}.npy"
        np.save(root / shard, rng.integers(0, 256, (n, frames, size, size, 3), dtype=np.uint8))
        digest = f"{video:064x}"
        for k in range(n):
            rows.append([
                f"{digest[:16]}-{k:05d}", f"bench{video:04d}.mp4", digest, k, k * frames, 1, frames, 16.0,
                frames / 16.0, "train", shard, k, UNLABELLED, "bench",
            ])  # fmt: skip
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_parquet(root / MANIFEST, index=False)
    return root


@dataclass
class LoaderRate:
    workers: int
    first_batch_s: float  # from building the loader to its first batch: worker start-up included
    clips_per_s: float  # over the timed batches


def measure(dataset: ClipDataset, workers: int, batch: int, batches: int, device: torch.device) -> LoaderRate:
    """Time `batches` batches of `batch` clips through the training loader with `workers` processes, after the
    first batch and the PREFETCH batches per worker the others read meanwhile (a full read-ahead buffer taken
    at once would count as free clips)."""
    skip = 1 + PREFETCH * workers
    train = TrainConfig(steps=skip + batches, batch_size=batch, loader_workers=workers)
    ctx = LocalContext(Path(tempfile.gettempdir()), device=device)
    start = time.perf_counter()
    with training_batches(dataset, collate_clips, train, ctx, per_rank=batch, seed=0, start=0) as source:
        source.take(0)
        first = time.perf_counter() - start
        for step in range(1, skip):
            source.take(step)
        timed = time.perf_counter()
        for step in range(skip, skip + batches):
            source.take(step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter()
    return LoaderRate(workers, first, batches * batch / (end - timed))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 1, 2], help="loader_workers counts to time"
    )
    parser.add_argument("--batch", type=int, default=8, help="clips per batch (one rank's batch)")
    parser.add_argument(
        "--batches", type=int, default=8, help="timed batches per worker count, after the warm-up"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count; the best is kept")
    parser.add_argument(
        "--clips", type=int, default=48, help="clips in the temporary store (3 MiB each at 256 px)"
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="clip height and width in pixels")
    parser.add_argument(
        "--device", default="cpu", help="where batches are moved (cuda: pinned, non-blocking)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=None, help="seconds of one training step at --batch, to compare"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        dataset = ClipDataset(write_clip_store(Path(tmp), args.clips, args.frames, args.size))
        print(f"{args.clips} clips of {args.frames}x{args.size}x{args.size}x3 uint8, batch {args.batch}, "
              f"{args.batches} timed batches, device {device}, torch threads {torch.get_num_threads()}")  # fmt: skip
        best: dict[int, LoaderRate] = {}
        for _ in range(args.repeats):
            for workers in args.workers:
                rate = measure(dataset, workers, args.batch, args.batches, device)
                if workers not in best or rate.clips_per_s > best[workers].clips_per_s:
                    best[workers] = rate
    for rate in best.values():
        line = (
            f"loader_workers={rate.workers}: {rate.clips_per_s:7.1f} clips/s "
            f"({rate.clips_per_s / args.batch:5.2f} batches/s; first batch {rate.first_batch_s:.2f} s)"
        )
        if args.step_seconds:
            steps = rate.clips_per_s / args.batch
            verdict = "keeps up" if steps * args.step_seconds >= 1 else "the step waits for data"
            line += f"; feeds {steps:.2f} steps/s against {1 / args.step_seconds:.2f} needed: {verdict}"
        print(line)


if __name__ == "__main__":
    main()
