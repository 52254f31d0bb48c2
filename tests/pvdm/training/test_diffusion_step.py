from __future__ import annotations

import time

import pytest
import torch

from pvdm.config.diffusion import DiffusionTrainConfig, ProcessConfig
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.objective import eps_loss
from pvdm.diffusion.schedule import make_schedule
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape
from pvdm.models.unet import TriplaneUNet
from pvdm.training.diffusion_step import diffusion_train_step

LATENT = LatentShape(channels=4, frames=4, height=4, width=4)  # L = 16 + 16 + 16 = 48
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def tiny_setup(lr: float = 2e-3, **train):
    cfg = TriplaneUNetConfig(
        model_channels=16, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2
    )
    model = TriplaneUNet(cfg, LATENT)
    train_cfg = DiffusionTrainConfig(lr=lr, **train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=tuple(train_cfg.betas))
    return model, EMA(model, decay=0.99), optimizer, train_cfg


@torch.no_grad()
def held_out_loss(model, z, schedule, draws: int = 8) -> float:
    """Loss over fixed timesteps and noise (its own seeded generator), so before and after are comparable."""
    model.eval()
    g = torch.Generator().manual_seed(123)
    return sum(eps_loss(model, z, None, schedule, g).item() for _ in range(draws)) / draws


@pytest.mark.slow
def test_diffusion_model_overfits_a_handful_of_latents() -> None:
    schedule = make_schedule(ProcessConfig())
    data = torch.rand(4, *LATENT.packed_shape) * 2 - 1  # four fixed latents in the tanh range
    batch = data.repeat(4, 1, 1)  # 16 noisings of the four latents per step
    model, ema, optimizer, cfg = tiny_setup(lr=3e-3, cond_prob=0.0, grad_clip=1.0)
    g = torch.Generator().manual_seed(0)
    before = held_out_loss(model, data, schedule)
    start = time.perf_counter()
    for _ in range(200):
        diffusion_train_step(
            model, ema, optimizer, batch, None, schedule, cfg, device=CPU, precision="fp32", generator=g
        )
    after = held_out_loss(model, data, schedule)
    print(
        f"overfit: held-out eps loss {before:.4f} -> {after:.4f} in 200 steps, {time.perf_counter() - start:.1f}s"
    )
    assert before == pytest.approx(1.0, abs=0.1)  # zero-initialised output: predicts eps = 0
    assert after < before / 5


def test_step_reports_metrics_conditions_per_sample_and_updates_ema() -> None:
    schedule = make_schedule(ProcessConfig(timesteps=100))
    model, ema, optimizer, cfg = tiny_setup(cond_prob=1.0)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[2]))
    z, z_prev = torch.randn(4, *LATENT.packed_shape), torch.randn(4, *LATENT.packed_shape)
    has_prev = torch.tensor([True, False, True, False])
    shadow_before = {k: v.clone() for k, v in ema.shadow.items()}
    out = diffusion_train_step(
        model,
        ema,
        optimizer,
        z,
        z_prev,
        schedule,
        cfg,
        device=CPU,
        precision="fp32",
        generator=torch.Generator().manual_seed(0),
        has_prev=has_prev,
    )
    assert set(out) == {"loss", "grad_norm", "cond_fraction"}
    assert out["cond_fraction"] == 0.5
    assert out["grad_norm"] > 0 and torch.isfinite(torch.tensor(out["loss"]))
    torch.testing.assert_close(seen[0], z_prev * has_prev[:, None, None])  # the model saw z_prev or zeros
    assert ema.num_updates == 1
    assert any(not torch.equal(shadow_before[k], v) for k, v in ema.shadow.items())

    out = diffusion_train_step(
        model,
        ema,
        optimizer,
        z,
        None,
        schedule,
        cfg,
        device=CPU,
        precision="bf16",
        generator=torch.Generator().manual_seed(1),
    )
    assert out["cond_fraction"] == 0.0 and seen[-1] is None
    assert torch.isfinite(torch.tensor(out["loss"]))
