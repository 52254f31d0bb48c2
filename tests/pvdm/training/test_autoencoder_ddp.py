"""The autoencoder step with the GAN phase on, under real DistributedDataParallel (2 gloo processes, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.training import TrainConfig
from pvdm.families.triplane.config import TriplaneAEConfig
from pvdm.training.autoencoder import build_autoencoder_state
from pvdm.training.autoencoder_step import autoencoder_train_step
from pvdm.training.schedule import step_generator

CFG = AutoencoderConfig(
    model=TriplaneAEConfig(
        width=16, heads=2, patch_size=4, encoder_depth=1, decoder_depth=1, projection_depth=1
    ),
    loss=AELossConfig(lpips_weight=0.0, gan_start_step=0, disc_channels=8, disc_layers=2, disc_lr=1e-3),
    train=TrainConfig(lr=1e-3, grad_clip=1.0),
)
DATA = DataConfig(resolution=16, frames=4)
STEPS = 3
WORLD = 2


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init_file, rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)  # the same initial weights on both ranks, as Ray's workers build them
        zero = lambda a, b: a.new_zeros(())  # noqa: E731 - LPIPS off
        state = build_autoencoder_state(CFG, DATA, zero, torch.device("cpu"))
        disc_start = _flat(state.discriminator).clone()
        state.model, state.discriminator = DDP(state.model), DDP(state.discriminator)
        data = torch.rand(WORLD, 2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        for step in range(STEPS):
            metrics = autoencoder_train_step(
                state,
                data[rank],  # each rank its own batch
                CFG.loss,
                step,
                grad_clip=CFG.train.grad_clip,
                precision="fp32",
                generator=step_generator(0, step, rank),
            )
            assert "d_loss" in metrics and "g_loss" in metrics
        torch.save(
            {
                "model": _flat(state.model.module),
                "disc": _flat(state.discriminator.module),
                "disc_start": disc_start,
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # ~5 s alone, mostly two processes importing torch; 10-17 s on a loaded machine
def test_gan_phase_keeps_both_ranks_identical_under_ddp(tmp_path: Path) -> None:
    init_file = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(init_file, str(tmp_path)), nprocs=WORLD, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    torch.testing.assert_close(a["model"], b["model"], atol=1e-6, rtol=0)
    torch.testing.assert_close(a["disc"], b["disc"], atol=1e-6, rtol=0)
    assert (a["disc"] - a["disc_start"]).abs().max() > 1e-4  # the discriminator did train
