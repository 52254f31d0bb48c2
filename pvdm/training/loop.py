"""The per-worker training loop, written against a small context so it runs alone or under Ray Train.

`pvdm` never imports Ray: `pipelines.ray_train` supplies a context whose `report` goes through
`ray.train.report` and whose `prepare_model` wraps in DistributedDataParallel. `LocalContext` runs the same loop
in one process, checkpointing into a folder (tests, `pvdm` CLI, debugging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from pvdm.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, step_checkpoint_path

Metrics = dict[str, float]
log = logging.getLogger("pvdm.training")


class TrainContext(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move to the device and wrap for data-parallel training where there are several workers."""
        ...

    def resume_payload(self) -> dict[str, Any] | None:
        """The latest checkpoint payload of this run, or None to start from scratch."""
        ...

    def report(self, step: int, metrics: Metrics, payload: dict[str, Any] | None) -> None:
        """Called by every worker at the same steps; payload is a checkpoint (rank 0 only) or None."""
        ...


@dataclass
class LocalContext:
    """One process; checkpoints as step_XXXXXXXX.pt in `checkpoint_dir` (keeps the newest `keep`)."""

    checkpoint_dir: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    keep: int = 2
    on_report: Callable[[int, Metrics], None] | None = None
    rank: int = 0
    world_size: int = 1

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def resume_payload(self) -> dict[str, Any] | None:
        latest = latest_checkpoint(self.checkpoint_dir)
        return load_checkpoint(latest) if latest else None

    def report(self, step: int, metrics: Metrics, payload: dict[str, Any] | None) -> None:
        if payload is not None:
            save_checkpoint(step_checkpoint_path(self.checkpoint_dir, step), payload)
            for old in sorted(self.checkpoint_dir.glob("step_*.pt"))[: -self.keep]:
                old.unlink()
        if self.on_report:
            self.on_report(step, metrics)


@dataclass
class History:
    """Logged metrics as rows {step, name: value}; travels inside checkpoints so curves survive a resume."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def add(self, step: int, metrics: Metrics) -> None:
        self.rows.append({"step": float(step), **{k: float(v) for k, v in metrics.items()}})


def run_steps(
    ctx: TrainContext,
    start: int,
    total: int,
    step_fn: Callable[[int], Metrics],
    checkpoint_fn: Callable[[int, History], dict[str, Any]],
    *,
    checkpoint_every: int,
    log_every: int,
    history: History,
    desc: str,
) -> History:
    """Run steps [start, total): log every `log_every`, checkpoint every `checkpoint_every` and at the end."""
    if start and ctx.rank == 0:
        log.warning("%s: resuming from the checkpoint of step %d (of %d)", desc, start, total)
    bar = tqdm(
        range(start, total), desc=desc, initial=start, total=total, disable=ctx.rank != 0, mininterval=2
    )
    for step in bar:
        metrics = step_fn(step)
        done = step + 1
        is_log = done % log_every == 0 or done == total
        is_ckpt = done % checkpoint_every == 0 or done == total
        if is_log:
            history.add(done, metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if is_log or is_ckpt:
            payload = checkpoint_fn(done, history) if is_ckpt and ctx.rank == 0 else None
            ctx.report(done, metrics, payload)
    return history


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Each worker's share of the global batch. The global batch is the params' `batch_size` whatever the worker
    count (so a run resumed on another count trains on the same batches); a batch that does not divide is refused
    rather than silently shrunk."""
    if batch_size % world_size:
        raise ValueError(
            f"train.batch_size {batch_size} does not divide among {world_size} workers: set runtime.num_workers to "
            f"a divisor of it, or batch_size to a multiple of {world_size}"
        )
    return batch_size // world_size


def seed_everything(seed: int) -> None:
    """Same seed on every worker: identical initial weights (DDP broadcasts rank 0's anyway)."""
    torch.manual_seed(seed)
