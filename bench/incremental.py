"""Incremental preprocessing: what adding 10% more videos costs against a full preprocess of the folder.

    uv run --frozen python -m bench.incremental --videos 40

Writes `--videos` embedded-dataset videos, preprocesses them into a fresh clip store (the full cost), adds 10% more
videos and preprocesses again into the same store (what `dvc repro` does now that data/clips is `persist: true`:
only the new videos are decoded), then prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos


def timed_preprocess(raw: Path, out: Path) -> tuple[float, int]:
    start = time.perf_counter()
    report = run_preprocess(
        raw, out, DataConfig(resolution=32, frames=16), PreprocessConfig(), progress=False
    )
    return time.perf_counter() - start, report.decoded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=128, help="frames per video")
    args = parser.parse_args()
    extra = max(1, args.videos // 10)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_videos(root / "all", args.videos + extra, size=64, frames=args.frames, seed=0)
        raw = root / "raw"
        raw.mkdir()
        paths = sorted((root / "all").glob("*.mp4"))
        for path in paths[: args.videos]:
            path.rename(raw / path.name)
        full, decoded_full = timed_preprocess(raw, root / "clips")
        for path in paths[args.videos :]:
            path.rename(raw / path.name)
        more, decoded_more = timed_preprocess(raw, root / "clips")
    print(f"full preprocess of {args.videos} videos: {full:.1f} s ({decoded_full} decoded)")
    print(f"after adding {extra} videos (+{extra / args.videos:.0%}): {more:.1f} s ({decoded_more} decoded)")
    print(f"incremental / full: {more / full:.2f}")


if __name__ == "__main__":
    main()
