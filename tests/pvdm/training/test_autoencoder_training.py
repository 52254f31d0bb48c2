from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pvdm.checkpoint import load_checkpoint, save_checkpoint
from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.training import TrainConfig
from pvdm.data.video import read_video
from pvdm.families.registry import load_autoencoder
from pvdm.families.triplane.config import TriplaneAEConfig
from pvdm.metrics.recon import psnr
from pvdm.training.autoencoder import (
    autoencoder_checkpoint,
    build_autoencoder_state,
    restore_autoencoder_state,
)
from pvdm.training.autoencoder_step import autoencoder_train_step
from pvdm.training.guards import NonFiniteLossError
from pvdm.training.schedule import step_generator

DATA = DataConfig(resolution=16, frames=4)
MODEL = TriplaneAEConfig(
    width=32, heads=4, patch_size=4, encoder_depth=2, decoder_depth=2, projection_depth=1
)


def tiny_real_clip(videos: Path) -> torch.Tensor:
    """4 frames of a real video, resized to 16x16, as (1, 3, 4, 16, 16) in [-1, 1]."""
    frames = torch.from_numpy(read_video(videos / "cc0" / "flower.mp4", max_frames=8)[::2])  # (4, H, W, 3)
    x = frames.permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, 4, H, W)
    return F.interpolate(x, size=(16, 16), mode="area").unsqueeze(0)


def l1_only(**loss) -> AutoencoderConfig:
    return AutoencoderConfig(
        model=MODEL,
        loss=AELossConfig(lpips_weight=0.0, **loss),
        train=TrainConfig(lr=2e-3, betas=[0.9, 0.99], grad_clip=1.0),
    )


def run(state, x, cfg: AutoencoderConfig, start: int, end: int) -> list[dict]:
    return [
        autoencoder_train_step(
            state,
            x,
            cfg.loss,
            s,
            grad_clip=cfg.train.grad_clip,
            precision="fp32",
            generator=step_generator(0, s),
        )
        for s in range(start, end)
    ]


def no_perceptual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    raise AssertionError("LPIPS must not be called when its weight is 0")


@pytest.mark.slow
def test_autoencoder_overfits_a_real_clip(shared_videos: Path) -> None:
    from pvdm.metrics.lpips import load_lpips

    x = tiny_real_clip(shared_videos)
    cfg = AutoencoderConfig(
        model=MODEL, loss=AELossConfig(lpips_weight=0.1), train=TrainConfig(lr=2e-3, betas=[0.9, 0.99])
    )
    state = build_autoencoder_state(cfg, DATA, load_lpips("vgg"), torch.device("cpu"))
    with torch.no_grad():
        before = float(psnr(x, state.model(x)).mean())
    history = run(state, x, cfg, 0, 200)
    with torch.no_grad():
        after = float(psnr(x, state.model.eval()(x)).mean())
    print(
        f"autoencoder PSNR on a real 4x16x16 clip: {before:.2f} dB at step 0 -> {after:.2f} dB after 200 steps"
    )
    assert after > before + 10, (before, after)
    assert history[-1]["loss"] < 0.3 * history[0]["loss"]
    assert "lpips" in history[0]


def test_resume_is_exact(tmp_path: Path) -> None:
    """N steps + save + load + N steps == 2N steps in one go, GAN phase included (it starts mid-run)."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    cfg = l1_only(gan_start_step=2, disc_channels=8, disc_layers=2)
    device = torch.device("cpu")

    torch.manual_seed(7)
    straight = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    run(straight, x, cfg, 0, 6)

    torch.manual_seed(7)
    first = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    run(first, x, cfg, 0, 3)
    save_checkpoint(tmp_path / "ck.pt", autoencoder_checkpoint(first, 3, cfg, DATA))
    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    start = restore_autoencoder_state(resumed, load_checkpoint(tmp_path / "ck.pt"))
    assert start == 3
    run(resumed, x, cfg, start, 6)

    for module in ("model", "discriminator"):
        a, b = getattr(straight, module).state_dict(), getattr(resumed, module).state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=f"{module}.{key}")


def test_gan_phase_starts_at_the_configured_step() -> None:
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    cfg = l1_only(gan_start_step=2, disc_channels=8, disc_layers=2)
    state = build_autoencoder_state(cfg, DATA, no_perceptual, torch.device("cpu"))
    history = run(state, x, cfg, 0, 3)
    assert "d_loss" not in history[1] and "g_loss" not in history[1]
    assert {"d_loss", "g_loss", "feature_matching"} <= history[2].keys()


def test_checkpoint_rebuilds_the_model_for_inference(tmp_path: Path) -> None:
    cfg = l1_only()
    state = build_autoencoder_state(cfg, DATA, no_perceptual, torch.device("cpu"))
    save_checkpoint(tmp_path / "ae.pt", autoencoder_checkpoint(state, 0, cfg, DATA))
    model = load_autoencoder(load_checkpoint(tmp_path / "ae.pt"))
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), state.model.eval()(x))


def test_non_finite_loss_stops_before_the_optimizer_step() -> None:
    cfg = l1_only()
    state = build_autoencoder_state(cfg, DATA, no_perceptual, torch.device("cpu"))
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    x = torch.full((1, 3, 4, 16, 16), float("nan"))
    with pytest.raises(NonFiniteLossError, match="autoencoder loss is nan at step 5"):
        run(state, x, cfg, 5, 6)
    for k, v in state.model.state_dict().items():
        assert torch.equal(v, before[k]), k
