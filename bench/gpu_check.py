"""The GPU figures the README's Scaling out section leaves unmeasured, in one command, for whoever has a GPU.

    uv run --frozen python -m bench.gpu_check [--out gpu_check] [--config paper|small] [--loader-workers 0 4 8]

What it measures, on the first visible CUDA device:
  1. A bf16 training step of the paper-size triplane autoencoder and UNet (bench.models, each in a fresh process):
     seconds per clip, so clips/s per GPU, and peak memory; and one 100-step DDIM video.
  2. The training data loader (bench.loader, pvdm.training.data) at the paper's clip size, 16 x 256 x 256 x 3
     uint8, moving pinned batches to the GPU, for each --loader-workers count: clips/s.
  3. Whether the loader keeps up: the autoencoder step consumes pixel clips at its clips/s per GPU; a loader that
     delivers fewer leaves the GPU waiting (the UNet trains on cached latents, a few KB a clip).

Writes <out>/gpu_check.json (every figure, the device and versions) and <out>/gpu_check.md (the table to paste into
the README), and prints the table. Without CUDA it stops at once: CPU figures are bench.models' and bench.loader's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench import loader, models
from pvdm.data.clips import ClipDataset


def keeps_up(loader_clips_per_s: float, train_clips_per_s: float) -> str:
    """The verdict for one loader setting against what a training step consumes."""
    if loader_clips_per_s >= train_clips_per_s:
        return f"keeps up ({loader_clips_per_s / train_clips_per_s:.1f}x what the step takes)"
    return (
        f"the GPU waits: the loader gives {loader_clips_per_s / train_clips_per_s:.0%} of what the step takes"
    )


def training_rates(results: list[dict[str, Any]]) -> dict[str, float]:
    """Clips per second per GPU of each measured training step (bench.models results), by model kind."""
    return {
        r["kind"]: 1.0 / r["per_clip_s"]
        for r in results
        if r.get("per_clip_s") and r["kind"] in ("ae", "unet")
    }


def measure_models(config: str, out: Path) -> list[dict[str, Any]]:
    path = out / "models.json"
    models.main(["--config", config, "--device", "cuda", "--precision", "bf16", "--json", str(path)])
    return json.loads(path.read_text())["results"]


def measure_loader(workers: list[int], batch: int, clips: int) -> list[loader.LoaderRate]:
    with tempfile.TemporaryDirectory(prefix="gpu-check-loader-") as tmp:
        dataset = ClipDataset(loader.write_clip_store(Path(tmp), clips))
        return [loader.measure(dataset, w, batch, batches=16, device=torch.device("cuda")) for w in workers]


def report(train: dict[str, float], rates: list[loader.LoaderRate], device: str) -> str:
    lines = [f"GPU check on {device} (bf16, paper size 16 x 256 x 256)", ""]
    lines += [f"- {kind} training: {rate:.2f} clips/s per GPU" for kind, rate in sorted(train.items())]
    lines += [
        "",
        "| loader_workers | clips/s | first batch | against the autoencoder step |",
        "|---|---|---|---|",
    ]
    ae = train.get("ae")
    for r in rates:
        verdict = keeps_up(r.clips_per_s, ae) if ae else "-"
        lines.append(f"| {r.workers} | {r.clips_per_s:.1f} | {r.first_batch_s:.2f} s | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu_check"), help="folder for the JSON and Markdown"
    )
    parser.add_argument("--config", choices=["paper", "small"], default="paper", help="bench.models' sizes")
    parser.add_argument("--loader-workers", type=int, nargs="+", default=[0, 4, 8])
    parser.add_argument("--loader-batch", type=int, default=8, help="one rank's batch of clips")
    parser.add_argument(
        "--loader-clips", type=int, default=128, help="clips in the temporary store (3 MiB each)"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_check needs a CUDA GPU; on CPU run bench.models and bench.loader")
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    results = measure_models(args.config, args.out)
    train = training_rates(results)
    rates = measure_loader(args.loader_workers, args.loader_batch, args.loader_clips)
    text = report(train, rates, device)
    (args.out / "gpu_check.md").write_text(text + "\n")
    record = {"device": device, "torch": torch.__version__, "training_clips_per_s": train,
              "loader": [vars(r) for r in rates], "models": results}  # fmt: skip
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2, default=str))
    print("\n" + text)


if __name__ == "__main__":
    main()
