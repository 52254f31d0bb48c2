"""One set of generated clips scored under the old and the new FVD protocol, to see what the change moves.

    uv run --frozen python -m bench.fvd_protocols --clips data/clips --samples data/samples --n-real 64

old: the first `n_real` clips of the split in store order (the back-to-back clips of the first videos), against
     the generated clips decoded back from their mp4 files (h264, crf 18).
new: one seeded random window per video (pvdm.metrics.windows, StyleGAN-V), against the sampler's own uint8
     frames (frames.npy); and the floor, fvd_real_halves, under the new rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pvdm.data.clips import ClipStore
from pvdm.evaluation import fvd_real_halves, generated_videos, real_set, video_files
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.fvd import FVDProtocol, compute_fvd


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--samples", type=Path, default=Path("data/samples"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--n-real", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store, extractor = ClipStore(args.clips), I3DFeatureExtractor(batch_size=8)
    n_fake, sampler_frames, _ = generated_videos(args.samples / "clips")
    protocol = FVDProtocol("fvd_16", 16, args.n_real, n_fake, args.split)

    first = store.indices(args.split)[: args.n_real]
    old = compute_fvd(
        (np.asarray(store[i]) for i in first), video_files(args.samples / "clips"), protocol, extractor
    )
    reals = real_set(store, args.split, args.samples, args.seed)
    new = compute_fvd(reals.windows(16, args.n_real), sampler_frames(), protocol, extractor)
    mixed = compute_fvd(
        reals.windows(16, args.n_real), video_files(args.samples / "clips"), protocol, extractor
    )
    floor, _ = fvd_real_halves(protocol, reals, extractor)
    videos = len({store.manifest["source"].iloc[i] for i in first})
    print(f"old protocol (first {args.n_real} clips = {videos} videos; mp4-decoded samples): {old.fvd:.1f}")
    print(f"new real windows, mp4-decoded samples:                                  {mixed.fvd:.1f}")
    print(
        f"new protocol ({len(reals.runs)} videos, one window each; the sampler's frames):     {new.fvd:.1f}"
    )
    print(
        f"floor, fvd_real_halves at n = {args.n_real // 2}:                                     {floor:.1f}"
    )


if __name__ == "__main__":
    main()
