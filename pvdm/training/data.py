"""The training loops' data loader: the schedule's batches, read ahead by DataLoader worker processes.

Order. The loader decides nothing: rank r's batch of step k is `rank_slice(global_batch_indices(...), r, world)`,
a function of (seed, step, rank) defined in pvdm.training.schedule. A run resumed at step `start` builds its loader
over steps [start, total) and sees exactly the batches the uninterrupted run would, with no sampler state in the
checkpoint. The loader draws its workers' base seed from its own generator, never from the global RNG that the
checkpoint captures, so adding it changed no training result.

Step tags. Every index travels to the dataset as (step, i) and every batch comes back with its step: a loop that
took the batch of another step (a skipped or repeated `next`) fails at once instead of training on other data.

Workers (`train.loader_workers`): 0 reads and collates on the training thread, as before; N > 0 forks N processes
that read, decode and collate up to `PREFETCH` batches each ahead of the step that needs them, into pinned memory
when the device is CUDA so the copy to it can overlap compute. Datasets must survive fork: ClipStore maps its shards
lazily in each process, LatentStore's read-only memory map is shared by the forked children.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from pvdm.config.training import TrainConfig
from pvdm.training.loop import TrainContext
from pvdm.training.schedule import global_batch_indices, rank_slice

PREFETCH = 2  # batches read ahead per worker process


class StepBatch(NamedTuple):
    """A batch and the step it was drawn for (a NamedTuple: DataLoader pins its fields and leaves the step)."""

    step: int
    data: Any  # torch.Tensor (B, C, T, H, W) of clips, or LatentBatch


@dataclass
class LatentBatch:
    z: torch.Tensor  # (B, *spec.shape) clean latents to denoise
    z_prev: torch.Tensor  # (B, *spec.shape) the previous clip's clean latent (zeros where none)
    has_prev: torch.Tensor  # (B,) bool
    label: torch.Tensor  # (B,) long class ids, -1 = unlabelled

    def pin_memory(self) -> LatentBatch:
        """Called by DataLoader's pinning thread (pin_memory=True)."""
        return LatentBatch(*(getattr(self, f.name).pin_memory() for f in fields(self)))

    def to(self, device: torch.device, non_blocking: bool = False) -> LatentBatch:
        return LatentBatch(
            *(getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self))
        )


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """One rank's batches of steps [start, total), each a list of (step, dataset index), in step order."""

    def __init__(
        self, n: int, per_rank: int, rank: int, world_size: int, seed: int, start: int, total: int
    ) -> None:
        self.n, self.per_rank, self.rank, self.world_size = n, per_rank, rank, world_size
        self.seed, self.start, self.total = seed, start, total

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            batch = global_batch_indices(self.n, self.per_rank * self.world_size, step, self.seed)
            yield [(step, i) for i in rank_slice(batch, self.rank, self.world_size)]


class StepTagged(Dataset):
    """`dataset` read by (step, i) keys: item (step, dataset[i]), so the collate can say which step it built."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, Any]:
        step, i = key
        return step, self.dataset[i]


def _step_of(items: list[tuple[int, Any]]) -> int:
    steps = {step for step, _ in items}
    if len(steps) != 1:
        raise RuntimeError(f"a batch mixes the items of steps {sorted(steps)}")
    return steps.pop()


def collate_clips(items: list[tuple[int, torch.Tensor]]) -> StepBatch:
    """Clips (C, T, H, W) -> StepBatch of (B, C, T, H, W). default_collate stacks straight into shared memory in a
    worker process, saving the copy a plain torch.stack would cost on the way to the training process."""
    return StepBatch(_step_of(items), default_collate([x for _, x in items]))


def collate_latent_pairs(items: list[tuple[int, tuple[torch.Tensor, torch.Tensor, bool, int]]]) -> StepBatch:
    """LatentPairDataset items (z, z_prev, has_prev, label) -> StepBatch of a LatentBatch."""
    pairs = [item for _, item in items]
    return StepBatch(
        _step_of(items),
        LatentBatch(
            z=default_collate([p[0] for p in pairs]),
            z_prev=default_collate([p[1] for p in pairs]),
            has_prev=torch.tensor([bool(p[2]) for p in pairs], dtype=torch.bool),
            label=torch.tensor([int(p[3]) for p in pairs], dtype=torch.long),
        ),
    )


def training_loader(
    dataset: Dataset,
    collate_fn: Callable[[list], StepBatch],
    train: TrainConfig,
    ctx: TrainContext,
    *,
    per_rank: int,
    seed: int,
    start: int,
) -> DataLoader:
    """The loader of ctx's rank over steps [start, train.steps), `train.loader_workers` processes reading ahead.

    persistent_workers only matters if the loader is iterated again (the loops iterate it once); it is on with
    workers so a second pass would not fork them again."""
    workers = train.loader_workers
    sampler = StepBatchSampler(len(dataset), per_rank, ctx.rank, ctx.world_size, seed, start, train.steps)
    return DataLoader(
        StepTagged(dataset),
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        prefetch_factor=PREFETCH if workers else None,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),  # workers' base seed: leaves the global RNG alone
    )


def to_device(data: Any, device: torch.device) -> Any:
    """A batch's tensors (a tensor or a LatentBatch) on `device`; non_blocking overlaps a pinned copy with compute."""
    return data.to(device, non_blocking=True)


class StepBatches:
    """One pass over a training loader, taken a step at a time by the loop's step_fn (steps in order).

    A context manager: leaving it drops the iterator and the loader (which holds the iterator with persistent
    workers). When it holds the only references, as `training_batches` arranges, the worker processes stop as the
    loop ends or fails, not when a traceback that keeps the loop's frame alive is freed."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.device = device
        self._loader: DataLoader | None = loader
        self._batches: Iterator[StepBatch] | None = iter(loader)

    def take(self, step: int) -> Any:
        """The batch of `step` on the device; raises if the loader's next batch belongs to another step."""
        if self._batches is None:
            raise RuntimeError("the loader is closed")
        batch = next(self._batches)
        if batch.step != step:
            raise RuntimeError(f"the loader gave the batch of step {batch.step} to step {step}")
        return to_device(batch.data, self.device)

    def close(self) -> None:
        self._batches = self._loader = None

    def __enter__(self) -> StepBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def training_batches(
    dataset: Dataset,
    collate_fn: Callable[[list], StepBatch],
    train: TrainConfig,
    ctx: TrainContext,
    *,
    per_rank: int,
    seed: int,
    start: int,
) -> StepBatches:
    """The loop's batches of steps [start, train.steps) on ctx.device (see training_loader), in a StepBatches
    that alone holds the loader."""
    loader = training_loader(dataset, collate_fn, train, ctx, per_rank=per_rank, seed=seed, start=start)
    return StepBatches(loader, ctx.device)
