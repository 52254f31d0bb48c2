"""The StyleGAN-V real-window rule: one seeded random window per video, more (spread evenly) only when needed."""

from __future__ import annotations

from collections import Counter

from pvdm.metrics.windows import Run, halves, window_plan


def test_one_window_per_video_when_there_are_enough_videos() -> None:
    lengths = [40, 64, 16, 100, 30, 50]
    plan = window_plan(lengths, 16, 4, seed=0)
    videos = [v for v, _ in plan]
    assert len(plan) == 4 and len(set(videos)) == 4  # four different videos
    assert all(0 <= s <= lengths[v] - 16 for v, s in plan)
    assert plan == window_plan(lengths, 16, 4, seed=0)  # reproducible with the seed
    assert plan != window_plan(lengths, 16, 4, seed=1)  # and different with another
    assert set(videos) != {0, 1, 2, 3} or plan != [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 0),
    ]  # not the first of each in order


def test_fewer_videos_than_windows_spread_windows_evenly_round_robin() -> None:
    plan = window_plan([64, 64, 10], 16, 6, seed=3)  # the 10-frame video is too short: two usable videos
    assert Counter(v for v, _ in plan) == {0: 3, 1: 3}
    for video in (0, 1):
        assert sorted(s for v, s in plan if v == video) == [0, 24, 48]  # spread over 0..48
    assert {plan[0][0], plan[1][0]} == {0, 1}  # every video's first window before any second one
    assert window_plan([10, 12], 16, 4, seed=0) == []  # no video long enough


def test_halves_are_disjoint_and_seeded() -> None:
    runs = [Run((i,), 16, -1) for i in range(7)]
    a, b = halves(runs, seed=0)
    assert len(a) == len(b) == 3 and not set(a) & set(b)
    assert halves(runs, seed=0) == (a, b) and halves(runs, seed=5) != (a, b)
