"""Autoencoder quality against wall time: held-out PSNR after N seconds of training, for a preset and overrides.

    uv run --frozen python -m bench.quality_vs_time --seconds 300                       # params.yaml
    uv run --frozen python -m bench.quality_vs_time --seconds 300 --set autoencoder.train.lr=0.001

Trains the autoencoder through the library loop (`train_autoencoder`, one process, no Ray) on the clip store's
train split and, at every checkpoint, scores PSNR on up to 32 held-out (test-split) clips with the checkpoint's
weights. Training time excludes the scoring. Stops at `--seconds` of training or the preset's step count. Prints
one line per checkpoint: step, training seconds, held-out PSNR, and the motion ratio of the reconstructions (their
mean frame-to-frame change over the clips'; PSNR alone rewards a blurred, still average of the clip, which this
exposes); `--json` writes the curve, `--keep` the last scored checkpoint (for `pvdm inspect` or a recon grid).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pvdm.checkpoint import save_checkpoint
from pvdm.config import parse_params
from pvdm.config.base import load_yaml
from pvdm.data.clips import ClipDataset, ClipStore
from pvdm.families.registry import load_autoencoder
from pvdm.metrics.recon import psnr
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.loop import LocalContext


class OutOfTime(Exception):
    pass


class ScoringContext(LocalContext):
    """A LocalContext that scores every checkpoint on held-out clips and stops after a training-time budget."""

    def __init__(self, folder: Path, held_out: torch.Tensor, budget: float, keep: Path | None = None) -> None:
        super().__init__(folder)
        self.held_out, self.budget, self.curve, self.keep = held_out, budget, [], keep
        self.trained, self.last = 0.0, time.perf_counter()

    def report(self, step: int, metrics: dict[str, float], payload: dict[str, Any] | None) -> None:
        now = time.perf_counter()
        self.trained += now - self.last
        if payload is not None:
            model = load_autoencoder(payload)
            with torch.no_grad():
                rec = torch.cat([model(self.held_out[i : i + 8]) for i in range(0, len(self.held_out), 8)])
            rec = rec.clamp(-1, 1)
            score = float(psnr(self.held_out, rec).mean())
            ratio = frame_motion(rec) / frame_motion(self.held_out)
            self.curve.append(
                {
                    "step": step,
                    "seconds": round(self.trained, 1),
                    "psnr": round(score, 2),
                    "motion_ratio": round(ratio, 3),
                }
            )
            print(
                f"step {step:>5}  {self.trained:>7.1f} s  held-out PSNR {score:.2f} dB  motion ratio {ratio:.2f}",
                flush=True,
            )
            if self.keep is not None:
                save_checkpoint(self.keep, payload)
        self.last = time.perf_counter()
        if self.trained > self.budget:
            raise OutOfTime


def frame_motion(clips: torch.Tensor) -> float:
    """Mean |frame t+1 - frame t| of clips (N, 3, S, H, W) in [-1, 1], in [0, 1] units (evaluate's motion)."""
    return float((clips[:, :, 1:] - clips[:, :, :-1]).abs().mean()) / 2


def set_dotted(data: dict, key: str, value: str) -> None:
    *path, leaf = key.split(".")
    for part in path:
        data = data.setdefault(part, {})
    data[leaf] = yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", type=Path, default=Path("params.yaml"))
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--seconds", type=float, default=300.0, help="training-time budget")
    parser.add_argument("--every", type=int, default=100, help="steps between scored checkpoints")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    parser.add_argument("--json", type=Path, help="write the curve here")
    parser.add_argument("--keep", type=Path, help="save the last scored checkpoint here")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pvdm-quality"))
    args = parser.parse_args()
    data = copy.deepcopy(load_yaml(args.preset))
    for item in args.set:
        set_dotted(data, *item.split("=", 1))
    set_dotted(data, "autoencoder.train.checkpoint_every", str(args.every))
    params = parse_params(data)
    store = ClipStore(args.clips)
    split = "test" if store.indices("test") else "train"
    held_out = torch.stack(
        [ClipDataset(args.clips, split)[i] for i in range(min(32, len(store.indices(split))))]
    )
    folder = args.workdir / f"run-{time.strftime('%H%M%S')}"
    ctx = ScoringContext(folder, held_out, args.seconds, args.keep)
    torch.manual_seed(params.runtime.seed)
    with contextlib.suppress(OutOfTime):
        train_autoencoder(
            params.autoencoder, params.data, params.runtime, ClipDataset(args.clips, "train"), ctx
        )
    if args.json:
        args.json.write_text(
            json.dumps({"overrides": args.set, "split": split, "curve": ctx.curve}, indent=2)
        )


if __name__ == "__main__":
    main()
