"""I3D feature throughput (clips/s) at the FVD protocol's input size, 16 x 224 x 224, on CPU and CUDA.

    uv run --frozen python -m bench.i3d [--device cpu|cuda|both] [--batch-size 8] [--batches 4] [--frames 16]
        [--size 224] [--repeats 3] [--json PATH]

Times `I3DFeatureExtractor.features` (float input already in [-1, 1] at 224x224, so no resize: the detector
alone) on --batches batches after one warm-up batch; the best of --repeats runs is kept, because the
development machines are shared and the best run is the one least disturbed. On CUDA the clock waits for
the GPU (synchronize). Prints one line per device: clips per wall second, clips per second of the process's
CPU time (all threads; on a contended machine, times the thread count, it says what idle cores would do),
and the load average, which says how contended the wall figure was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from pvdm.metrics.features import I3DFeatureExtractor


def clips_per_second(
    extractor: I3DFeatureExtractor, batch: torch.Tensor, batches: int
) -> tuple[float, float]:
    """(clips per wall second, clips per second of this process's CPU time)."""
    extractor.features(batch)  # warm-up: allocator, cuDNN / oneDNN kernel selection
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        extractor.features(batch)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    clips = batches * len(batch)
    return clips / (time.perf_counter() - wall), clips / (time.process_time() - cpu)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "cpu"
    return f"{model}, {os.cpu_count()} cores"


def bench_device(device: str, args: argparse.Namespace) -> dict[str, object]:
    extractor = I3DFeatureExtractor(device, batch_size=args.batch_size, resize=False)
    batch = torch.rand(args.batch_size, 3, args.frames, args.size, args.size) * 2 - 1
    wall, cpu = max(clips_per_second(extractor, batch, args.batches) for _ in range(args.repeats))
    name = torch.cuda.get_device_name(extractor.device) if device == "cuda" else cpu_name()
    return {
        "device": device,
        "device_name": name,
        "threads": torch.get_num_threads(),
        "clip": f"{args.frames}x{args.size}x{args.size}",
        "batch_size": args.batch_size,
        "clips_per_s": round(wall, 3),
        "clips_per_cpu_s": round(cpu, 3),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("--device cuda: no CUDA device available")
        devices.remove("cuda")
    results = [bench_device(device, args) for device in devices]
    for r in results:
        print(
            f"I3D {r['clip']} {r['device']:>4} ({r['device_name']}, {r['threads']} threads, batch {r['batch_size']}): "
            f"{r['clips_per_s']:.2f} clips/s, {r['clips_per_cpu_s']:.2f} clips per CPU-second"
            f"  [load avg {r['loadavg_1min']}]"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
