"""VIDM's own training objective through the shared diffusion step, on moving synthetic frames: both generators
learn, and SpyNet learns through the motion loss."""

from __future__ import annotations

import pytest
import torch

from pvdm.config.diffusion import DiffusionTrainConfig
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.schedule import NoiseSchedule, linear_betas
from pvdm.families.identity.build import IdentityAutoencoder
from pvdm.families.vidm.config import VIDMConfig
from pvdm.families.vidm.denoiser import VIDMDenoiser
from pvdm.training.diffusion_step import diffusion_train_step

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = VIDMConfig(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2,
                 norm_groups=4, flow={"levels": 3, "widths": [4, 8, 4], "kernel": 5})  # fmt: skip


def moving_squares(batch: int, frames: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1]: a bright square crossing a dark background one pixel per frame."""
    clips = -torch.ones(batch, 3, frames, size, size)
    for b in range(batch):
        x0, y0 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=generator))
        for f in range(frames):
            x = (x0 + f) % (size - 3)
            clips[b, :, f, y0 : y0 + 3, x : x + 3] = 1.0
    return clips


@pytest.mark.slow
def test_both_generators_learn_and_spynet_learns_with_the_motion_loss() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = VIDMDenoiser(CFG, IdentityAutoencoder(6, 8).latent_spec)
    spy_before = [p.detach().clone() for p in model.motion.flow.parameters()]
    schedule = NoiseSchedule.from_betas(linear_betas(100, 1e-4, 0.02))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    train = DiffusionTrainConfig(grad_clip=1.0)
    ema = EMA(model, 0.99)
    curve = [
        diffusion_train_step(
            model,
            ema,
            optimizer,
            moving_squares(8, 6, 8, generator),
            None,
            schedule,
            train,
            device=torch.device("cpu"),
            precision="fp32",
            generator=generator,
        )  # fmt: skip
        for _ in range(150)
    ]
    for name in ("content_loss", "motion_loss"):
        first = sum(step[name] for step in curve[:15]) / 15
        last = sum(step[name] for step in curve[-15:]) / 15
        assert last < 0.7 * first, (name, first, last)
    assert curve[-1]["loss"] == pytest.approx(curve[-1]["content_loss"] + curve[-1]["motion_loss"], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(spy_before, model.motion.flow.parameters(), strict=True))


def test_data_parallel_wraps_the_whole_family_objective(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training loop hands DDP a TrainingObjective (DDP synchronises what runs inside the wrapped forward, and
    VIDM's loss runs both generators): a step through DDP (gloo, one process) takes the batch dataclass and the
    generator, returns the family's numbers and updates the weights exactly as the bare step does."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from pvdm.training.diffusion_step import TrainingObjective

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        schedule = NoiseSchedule.from_betas(linear_betas(100, 1e-4, 0.02))
        train = DiffusionTrainConfig(grad_clip=1.0)
        clips = moving_squares(4, 6, 8, torch.Generator().manual_seed(0))
        results = []
        for wrap in (False, True):
            torch.manual_seed(0)
            model = VIDMDenoiser(CFG, IdentityAutoencoder(6, 8).latent_spec)
            stepped = DistributedDataParallel(TrainingObjective(model, schedule, train)) if wrap else model
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            out = diffusion_train_step(stepped, EMA(model, 0.9), optimizer, clips, None, schedule, train,
                                       device=torch.device("cpu"), precision="fp32",
                                       generator=torch.Generator().manual_seed(1))  # fmt: skip
            results.append((out, [p.detach().clone() for p in model.parameters()]))
    finally:
        dist.destroy_process_group()
    (bare, bare_weights), (ddp, ddp_weights) = results
    assert bare["content_loss"] == pytest.approx(ddp["content_loss"]) and bare["motion_loss"] > 0
    for a, b in zip(bare_weights, ddp_weights, strict=True):
        torch.testing.assert_close(a, b)
