"""What the FVD bootstrap (pvdm.metrics.bootstrap) costs at the evaluate stage's and the papers' clip counts.

    uv run --frozen python -m bench.bootstrap_cost                          # 32, 256, 2048 clips, 1000 resamples
    uv run --frozen python -m bench.bootstrap_cost --clips 2048 --timed 50  # time 50 resamples, scale to 1000

Features are random (I3D's 400 logits-sized rows with a decaying spectrum, real and generated sets apart): the cost
depends only on the shapes, not the values. For each clip count (the same count of real and generated clips, as the
evaluate stage uses) it times `--timed` resamples of `fvd_interval` (one FVD per resample) and of
`paired_difference` (two), in this process, and scales to `--resamples` (the evaluate stage's
`evaluate.bootstrap_resamples`, 1000 by default). Wall seconds, on however many threads numpy's BLAS uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pvdm.metrics.bootstrap import BootstrapSpec, fvd_interval, paired_difference

FEATURES = 400  # the I3D features FVD uses


def features(rng: np.random.Generator, clips: int, shift: float) -> np.ndarray:
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(FEATURES))
    return rng.standard_normal((clips, FEATURES)) * spectrum + shift


def seconds_per_resample(clips: int, timed: int) -> tuple[float, float]:
    rng = np.random.default_rng(clips)
    real, fake_a, fake_b = (features(rng, clips, s) for s in (0.0, 0.1, 0.12))
    spec = BootstrapSpec(resamples=timed)
    start = time.perf_counter()
    fvd_interval(real, fake_a, spec)
    single = (time.perf_counter() - start) / timed
    start = time.perf_counter()
    paired_difference(real, fake_a, fake_b, spec)
    paired = (time.perf_counter() - start) / timed
    return single, paired


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, nargs="+", default=[32, 256, 2048])
    parser.add_argument("--timed", type=int, default=50, help="resamples actually timed per clip count")
    parser.add_argument("--resamples", type=int, default=1000, help="the count the table scales to")
    args = parser.parse_args()
    print(f"| clips | fvd_16_ci ({args.resamples} resamples) | paired difference ({args.resamples}) |")
    print("|---|---|---|")
    for clips in args.clips:
        single, paired = seconds_per_resample(clips, args.timed)
        print(f"| {clips} | {single * args.resamples:.1f} s | {paired * args.resamples:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
