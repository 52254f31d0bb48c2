"""Preprocess throughput against decord's decode-only throughput on the same files, in one run.

    uv run --frozen python -m bench.preprocess [--copies 12] [--resolution 128] [--frames 16] [--workers 0] [--repeats 2]

The corpus is the real videos of ../shared/data/videos (or, where absent, synthetic videos), repeated `--copies`
times. Each copy gets one trailing byte, which decoders ignore, so its content hash differs and preprocess decodes it
instead of setting it aside as a duplicate.

Three measurements, each in a fresh process, one decoding process per worker, as preprocess runs:
- decord decode-only at the stored size: every frame of every file to RGB (one decoder thread);
- decord decode-only scaled by the decoder to the size preprocess decodes to (short side = resolution): the least
  work any preprocess must do, so the physical limit of the stage;
- `run_preprocess` into an empty store: listing, hashing, decoding, cropping, shards, manifest, validation (the
  stage; its imports of pandas and great-expectations included, the interpreter start excluded).

Frames/s is over wall time; CPU s is user + system time of the process and all its descendants, sampled (a measure
the other loads of a shared machine disturb less; the stage's count includes its imports, about 2-3 CPU s). The runs alternate and the best of `--repeats` is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm"}


def build_corpus(root: Path, copies: int) -> list[Path]:
    sources = sorted(p for p in SHARED.rglob("*") if p.suffix in VIDEO_SUFFIXES) if SHARED.is_dir() else []
    if not sources:
        from pvdm.data.synthetic import generate_videos

        sources = generate_videos(root / "synthetic", 12, size=240, frames=120, seed=0)
    files = []
    for copy in range(copies):
        for src in sources:
            dst = root / "raw" / f"copy{copy}" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes() + bytes([copy]))  # a distinct hash, the same video
            files.append(dst)
    return files


def decode_all(path: str, resolution: int = 0) -> int:
    """Decode every frame of one file with decord, at its stored size or with the short side scaled to
    `resolution` by the decoder; returns the number of frames."""
    from decord import VideoReader, cpu

    from pvdm.data.video import decode_size, probe

    width, height = -1, -1
    if resolution:
        info = probe(path)
        width, height = decode_size(info.width, info.height, resolution)
    reader = VideoReader(path, ctx=cpu(0), width=width, height=height, num_threads=1)
    n = len(reader)
    for start in range(0, n, 64):
        reader.get_batch(list(range(start, min(start + 64, n)))).asnumpy()
    return n


def measure_decode(raw: Path, workers: int, resolution: int) -> int:
    paths = sorted((str(p) for p in raw.rglob("*") if p.is_file()), key=lambda p: -os.path.getsize(p))
    with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
        return sum(pool.map(decode_all, paths, [resolution] * len(paths)))


def measure_stage(raw: Path, workers: int, resolution: int, frames: int) -> tuple[int, dict[str, float]]:
    from pvdm.config import DataConfig, PreprocessConfig
    from pvdm.data.preprocess import run_preprocess

    with tempfile.TemporaryDirectory(prefix="bench-clips-") as out:
        data, cfg = DataConfig(resolution=resolution, frames=frames), PreprocessConfig(workers=workers)
        report = run_preprocess(raw, out, data, cfg, progress=False)
    return report.decoded_frames, report.timings


def run_one(kind: str, raw: Path, args: argparse.Namespace, workers: int) -> dict[str, float]:
    """One measurement in a fresh interpreter: frames, wall seconds and CPU seconds (it and its descendants)."""
    argv = [sys.executable, "-m", "bench.preprocess", "--one", kind, "--raw", str(raw)]
    argv += ["--resolution", str(args.resolution), "--frames", str(args.frames), "--workers", str(workers)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class CpuMeter:
    """CPU seconds of this process and its descendants (the decoding workers are grandchildren, children of the
    forkserver, which rusage never sees): their counters are sampled every 0.1 s until they exit."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for p in self._me.children(recursive=True):
                with contextlib.suppress(Exception):  # it may exit between the listing and the read
                    t = p.cpu_times()
                    self._seen[(p.pid, p.create_time())] = t.user + t.system

    def total(self) -> float:
        self._stop.set()
        self._thread.join()
        own = self._me.cpu_times()
        return own.user + own.system + sum(self._seen.values())


def child(args: argparse.Namespace) -> None:
    meter, start, phases = CpuMeter(), time.perf_counter(), {}
    if args.one == "stage":
        frames, phases = measure_stage(args.raw, args.workers, args.resolution, args.frames)
    else:
        frames = measure_decode(args.raw, args.workers, args.resolution if args.one == "scaled" else 0)
    wall = time.perf_counter() - start
    print(json.dumps({"frames": frames, "wall": wall, "cpu": meter.total(), "phases": phases}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="0: one per available core")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", choices=["stored", "scaled", "stage"], help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return child(args)
    workers = args.workers or len(os.sched_getaffinity(0))
    kinds = {
        "stored": "decord decode-only, stored size",
        "scaled": f"decord decode-only, scaled to {args.resolution}",
    }
    kinds["stage"] = "preprocess, whole stage"
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        files = build_corpus(Path(tmp), args.copies)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                runs[kind].append(run_one(kind, Path(tmp) / "raw", args, workers))
    best = {k: min(r, key=lambda x: x["wall"]) for k, r in runs.items()}
    best_cpu = {k: min(x["cpu"] for x in r) for k, r in runs.items()}
    n = int(best["stored"]["frames"])
    assert all(b["frames"] == n for b in best.values()), {k: b["frames"] for k, b in best.items()}
    source = "../shared/data/videos" if SHARED.is_dir() else "synthetic"
    print(
        f"corpus: {len(files)} files ({source} x {args.copies}), {n} frames; {workers} workers; best of {args.repeats}"
    )
    print(f"clips: {args.frames} frames at {args.resolution}x{args.resolution}")
    print(f"{'':36}{'frames/s':>9}{'vs scaled':>10}{'CPU s':>8}{'frames/CPU s':>13}{'vs scaled':>10}")
    for kind, name in kinds.items():
        wall, cpu = best[kind]["wall"], best_cpu[kind]
        print(
            f"{name:36}{n / wall:>9.0f}{best['scaled']['wall'] / wall:>10.0%}{cpu:>8.1f}{n / cpu:>13.0f}"
            f"{best_cpu['scaled'] / cpu:>10.0%}"
        )
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in best["stage"]["phases"].items())
    print(f"stage phases (best run, wall): {phases}; the rest is imports, manifest and report")


if __name__ == "__main__":
    main()
