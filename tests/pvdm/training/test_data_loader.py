"""The training loader: exactly the schedule's batches (any rank, any resume step, any worker count), step-checked."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config.diffusion import DiffusionConfig, DiffusionTrainConfig
from pvdm.config.training import TrainConfig
from pvdm.data.latents import LatentPairDataset
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.data import (
    LatentBatch,
    StepBatch,
    StepBatches,
    collate_clips,
    collate_latent_pairs,
    training_batches,
    training_loader,
)
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext
from pvdm.training.schedule import global_batch_indices, rank_slice
from tests.pvdm.training.test_loops import (
    DATA,
    RUNTIME,
    SPEC,
    Interrupt,
    ae_cfg,
    clips,
    interrupting,
    latent_store,
    no_perceptual,
)

N, SEED, TOTAL = 10, 7, 9


class Numbered(torch.utils.data.Dataset):
    """Item i is the tensor [i]: a batch spells out the indices it was built from."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


def loaded(
    world_size: int, rank: int, start: int, workers: int, per_rank: int = 2
) -> list[tuple[int, list[int]]]:
    train = TrainConfig(steps=TOTAL, loader_workers=workers)
    ctx = LocalContext(Path("unused"), rank=rank, world_size=world_size)
    loader = training_loader(Numbered(), collate_clips, train, ctx, per_rank=per_rank, seed=SEED, start=start)
    return [(b.step, b.data.flatten().long().tolist()) for b in loader]


def scheduled(world_size: int, rank: int, start: int, per_rank: int = 2) -> list[tuple[int, list[int]]]:
    return [
        (step, rank_slice(global_batch_indices(N, per_rank * world_size, step, SEED), rank, world_size))
        for step in range(start, TOTAL)
    ]


@pytest.mark.parametrize(
    ("world_size", "rank", "start"), [(1, 0, 0), (2, 1, 0), (3, 2, 4), (4, 0, 8), (2, 0, 9)]
)
def test_the_loader_yields_the_schedules_batches_from_the_start_step(
    world_size: int, rank: int, start: int
) -> None:
    # N=10 and up to 8 clips a step: batches wrap across epochs; start 9 = resumed at the end, nothing left
    assert loaded(world_size, rank, start, workers=0) == scheduled(world_size, rank, start)


def test_worker_processes_deliver_the_same_batches_in_the_same_order() -> None:
    assert loaded(2, 1, 3, workers=2) == loaded(2, 1, 3, workers=0) == scheduled(2, 1, 3)


def test_the_loader_leaves_the_global_rng_alone() -> None:
    """The checkpoint captures the global RNG: the loader must not draw from it (its worker seed included)."""
    before = torch.get_rng_state()
    loaded(1, 0, 0, workers=2)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_batch_of_another_step_is_refused() -> None:
    train = TrainConfig(steps=TOTAL)
    loader = training_loader(Numbered(), collate_clips, train, LocalContext(Path("unused")), per_rank=2, seed=SEED,
                             start=2)  # fmt: skip
    with StepBatches(loader, torch.device("cpu")) as batches:
        assert batches.take(2).shape == (2, 1)
        with pytest.raises(RuntimeError, match="batch of step 3 to step 4"):
            batches.take(4)
    with pytest.raises(RuntimeError, match="mixes the items of steps"):
        collate_clips([(1, torch.zeros(1)), (2, torch.zeros(1))])


def test_latent_pairs_collate_to_a_latent_batch_with_workers(tmp_path: Path) -> None:
    """A real LatentPairDataset (memory-mapped store) read by forked workers gives what the main process reads."""
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train = TrainConfig(steps=4, loader_workers=2)
    ctx = LocalContext(tmp_path / "unused")
    batches = list(training_loader(ds, collate_latent_pairs, train, ctx, per_rank=3, seed=SEED, start=0))
    alone = list(training_loader(ds, collate_latent_pairs, train.model_copy(update={"loader_workers": 0}), ctx,
                                 per_rank=3, seed=SEED, start=0))  # fmt: skip
    assert [b.step for b in batches] == [0, 1, 2, 3]
    for got, want in zip(batches, alone, strict=True):
        b = got.data
        assert isinstance(got, StepBatch) and isinstance(b, LatentBatch)
        assert b.z.shape == b.z_prev.shape == (3, *ds.store.spec.shape) and b.z.dtype == torch.float32
        assert b.has_prev.dtype == torch.bool and b.has_prev.shape == (3,)
        assert b.label.dtype == torch.long and b.label.tolist() == [-1, -1, -1]
        for name in ("z", "z_prev", "has_prev", "label"):
            assert torch.equal(getattr(b, name), getattr(want.data, name)), name
        assert all((z.abs().sum() == 0) != h for z, h in zip(b.z_prev, b.has_prev, strict=True))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    payload = load_checkpoint(latest_checkpoint(folder))
    assert payload["step"] == 7
    return payload["model"]


def test_autoencoder_training_is_identical_with_workers_and_after_a_resume(tmp_path: Path) -> None:
    cfg0 = ae_cfg(steps=7)
    cfg2 = cfg0.model_copy(update={"train": cfg0.train.model_copy(update={"loader_workers": 2})})
    train_autoencoder(cfg0, DATA, RUNTIME, clips(), LocalContext(tmp_path / "w0"), no_perceptual)
    train_autoencoder(cfg2, DATA, RUNTIME, clips(), LocalContext(tmp_path / "w2"), no_perceptual)
    with pytest.raises(Interrupt) as crash:
        train_autoencoder(
            cfg2, DATA, RUNTIME, clips(), interrupting(LocalContext(tmp_path / "r"), 3), no_perceptual
        )
    # the failed loop stopped its loader's workers, though the traceback still holds the loop's frame
    assert crash.traceback and not multiprocessing.active_children()
    train_autoencoder(cfg2, DATA, RUNTIME, clips(), LocalContext(tmp_path / "r"), no_perceptual)

    reference = weights(tmp_path / "w0")
    for run in ("w2", "r"):
        other = weights(tmp_path / run)
        assert all(torch.equal(value, other[key]) for key, value in reference.items()), run


def test_diffusion_training_is_identical_with_workers(tmp_path: Path) -> None:
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    final = {}
    for workers in (0, 2):
        cfg = DiffusionConfig(
            denoiser=TriplaneUNetConfig(model_channels=8, channel_mult=[1], num_res_blocks=1, attention_resolutions=[],
                                        num_heads=2, norm_groups=4),
            train=DiffusionTrainConfig(steps=3, batch_size=2, checkpoint_every=3, log_every=3, loader_workers=workers),
        )  # fmt: skip
        train_diffusion(cfg, RUNTIME, ds, SPEC, LocalContext(tmp_path / f"w{workers}"))
        final[workers] = load_checkpoint(latest_checkpoint(tmp_path / f"w{workers}"))
    assert final[0]["step"] == final[2]["step"] == 3
    for name, a, b in (
        ("model", final[0]["model"], final[2]["model"]),
        ("ema", final[0]["ema"]["shadow"], final[2]["ema"]["shadow"]),
    ):
        assert a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items()), name


@pytest.mark.gpu
def test_on_cuda_batches_are_pinned_by_the_loader_and_arrive_equal(tmp_path: Path) -> None:
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train = TrainConfig(steps=3, loader_workers=2)
    cuda = LocalContext(tmp_path / "unused", device=torch.device("cuda"))
    loader = training_loader(ds, collate_latent_pairs, train, cuda, per_rank=3, seed=SEED, start=0)
    assert loader.pin_memory
    assert all(b.data.z.is_pinned() and b.data.label.is_pinned() for b in loader)
    cpu = LocalContext(tmp_path / "unused")
    with (
        training_batches(ds, collate_latent_pairs, train, cuda, per_rank=3, seed=SEED, start=0) as on_gpu,
        training_batches(ds, collate_latent_pairs, train, cpu, per_rank=3, seed=SEED, start=0) as on_cpu,
    ):
        for step in range(3):
            got, want = on_gpu.take(step), on_cpu.take(step)
            assert got.z.is_cuda and got.has_prev.dtype == torch.bool
            assert all(
                torch.equal(getattr(got, n).cpu(), getattr(want, n))
                for n in ("z", "z_prev", "has_prev", "label")
            )
