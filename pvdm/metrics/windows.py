"""Which real frames an FVD compares against: the StyleGAN-V / PVDM window rule, on clip stores and on folders.

The rule: the videos are shuffled with a fixed seed and each gives one window of `frames` consecutive frames at a
random start, until `n` windows; only when there are fewer videos than `n` does a video give more windows, spread
evenly over its length. StyleGAN-V's real-side sampling (one random clip per video, cycling over the videos
again only when the dataset has fewer videos than the clips asked for) does the same; evenly spread extra windows
instead of more random ones keep them from overlapping when a video gives several. The first `n` windows are
taken round-robin (every video's first window, then every video's second, ...), so no video gets a second window
while another has none.

A clip store keeps each video as back-to-back clips; a "video" here is a run of consecutive clips of one source
(a gap, e.g. from `clip_step`, starts a new run), and a window may cross clip boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pvdm.data.clips import ClipStore

WINDOW_RULE = (
    "stylegan-v: videos shuffled with the seed, one random window per video; more windows per video, "
    "spread evenly, only when there are fewer videos than windows"
)


def window_plan(lengths: list[int], frames: int, n: int, seed: int) -> list[tuple[int, int]]:
    """(video index, start frame) of up to `n` windows of `frames` frames over videos of these lengths."""
    rng = np.random.default_rng(seed)
    usable = [i for i, length in enumerate(lengths) if length >= frames]
    order = [int(v) for v in rng.permutation(usable)]
    if not order or n <= 0:
        return []
    per_video = -(-n // len(order))
    if per_video == 1:
        return [(v, int(rng.integers(0, lengths[v] - frames + 1))) for v in order[:n]]
    starts = {
        v: sorted({int(s) for s in np.linspace(0, lengths[v] - frames, per_video).round()}) for v in order
    }
    rounds = [[(v, starts[v][k]) for v in order if k < len(starts[v])] for k in range(per_video)]
    return [w for r in rounds for w in r][:n]


@dataclass(frozen=True)
class Run:
    """Consecutive clips of one source video, in order: one "video" for the window rule."""

    clips: tuple[int, ...]
    clip_frames: int
    label: int

    @property
    def frames(self) -> int:
        return len(self.clips) * self.clip_frames


def store_runs(store: ClipStore, indices: list[int]) -> list[Run]:
    """The videos of a split as runs of back-to-back clips (each clip in exactly one run), in store order."""
    chosen, runs, seen = set(indices), [], set()
    labels = store.labels()
    for i in indices:
        if i in seen:
            continue
        while (prev := store.previous_clip(i)) is not None and prev in chosen and prev not in seen:
            i = prev  # walk back to the first clip of the run
        run = [i]
        while (nxt := store.next_clip(run[-1])) is not None and nxt in chosen:
            run.append(nxt)
        seen.update(run)
        runs.append(Run(tuple(run), store.frames, int(labels[i])))
    return runs


def run_window(store: ClipStore, run: Run, start: int, frames: int) -> np.ndarray:
    """Frames [start, start + frames) of a run, uint8 (frames, H, W, 3), read from only the clips they cover."""
    first, last = start // run.clip_frames, (start + frames - 1) // run.clip_frames
    covered = np.concatenate([np.asarray(store[c]) for c in run.clips[first : last + 1]])
    offset = start - first * run.clip_frames
    return covered[offset : offset + frames]


def store_windows(store: ClipStore, runs: list[Run], frames: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """The rule's windows over a list of runs."""
    for v, start in window_plan([r.frames for r in runs], frames, n, seed):
        yield run_window(store, runs[v], start, frames)


def halves(runs: list[Run], seed: int) -> tuple[list[Run], list[Run]]:
    """Two disjoint halves of the videos (seeded): the FVD between them is the floor any model can reach."""
    order = np.random.default_rng(seed + 1).permutation(len(runs))
    half = len(runs) // 2
    return [runs[i] for i in order[:half]], [runs[i] for i in order[half : 2 * half]]
