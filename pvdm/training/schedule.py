"""Deterministic, resumable data order and per-step randomness.

Batch contents and the random draws of step k depend only on (seed, k, rank), so a run resumed from a checkpoint
at step k continues exactly as the uninterrupted run would, with no sampler state to save.
"""

from __future__ import annotations

import math

import torch

from pvdm.config.training import TrainConfig


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def global_batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of the global batch of `step`: consecutive slices of per-epoch permutations (wrapping epochs)."""
    if n <= 0:
        raise ValueError("cannot draw batches from an empty dataset")
    positions = range(step * batch_size, (step + 1) * batch_size)
    perms: dict[int, torch.Tensor] = {}
    out = []
    for p in positions:
        epoch = p // n
        if epoch not in perms:
            perms[epoch] = epoch_permutation(n, seed, epoch)
        out.append(int(perms[epoch][p % n]))
    return out


def rank_slice(indices: list[int], rank: int, world_size: int) -> list[int]:
    """This worker's share of a global batch (strided, so every rank gets a batch of near-equal size)."""
    return indices[rank::world_size]


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for the random draws of one step on one worker."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 997 + rank)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of 0-based `step`: linear warm-up, then constant or cosine to final_lr_fraction * lr.
    A pure function of the step, so a resumed run continues the schedule exactly with no state to save."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.final_lr_fraction
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
