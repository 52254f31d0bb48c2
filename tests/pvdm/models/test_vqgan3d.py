"""The 3D-VQGAN: geometry, the EMA quantizer (round trip, dead codes, usage), learning, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pvdm.checkpoint import load_checkpoint, save_checkpoint
from pvdm.config import ConfigError, parse_params
from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.training import TrainConfig
from pvdm.families.vqgan3d.config import VQGAN3DConfig
from pvdm.metrics.recon import psnr
from pvdm.models.vqgan3d import VQGAN3D, EMAQuantizer
from pvdm.training.autoencoder import (
    autoencoder_checkpoint,
    build_autoencoder_state,
    restore_autoencoder_state,
)
from pvdm.training.autoencoder_step import autoencoder_train_step

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"channels": 8, "channel_mult": [1, 2], "temporal_downsample": 2, "spatial_downsample": 4,
        "codebook_size": 32, "codebook_dim": 4, "norm_groups": 4}  # fmt: skip
DATA = DataConfig(resolution=16, frames=8)


def no_perceptual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_zeros(())


def clips(n: int = 4) -> torch.Tensor:
    """Smooth moving blobs: learnable in a few dozen steps, unlike noise."""
    t = torch.arange(8.0)[:, None, None]
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    out = []
    for k in range(n):
        cx, cy = 4 + k + 0.8 * t, 6 + 0.5 * k + 0.3 * t
        blob = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 12)  # (T, H, W)
        out.append(torch.stack([blob, 1 - blob, 0.5 * blob + 0.2 * k]) * 2 - 1)
    return torch.stack(out)


def test_latent_grid_follows_the_downsampling_factors() -> None:
    model = VQGAN3D(VQGAN3DConfig(**TINY), frames=8, resolution=16)
    x = clips(2)
    z = model.encode(x)
    assert z.shape == (2, 4, 4, 4, 4) == (2, *model.latent_spec.shape)
    assert model.decode(z).shape == x.shape
    spec = model.latent_spec
    assert (spec.bound, spec.prior, spec.codebook_size) == (None, "normal", 32)
    with pytest.raises(
        ConfigError, match="data.resolution \\(18\\) must be divisible by the downsampling factor 4"
    ):
        parse_params({"data": {"resolution": 18}, "autoencoder": {"model": {"type": "vqgan3d", **TINY}},
                      "diffusion": {"denoiser": {"type": "unet3d"}}})  # fmt: skip
    with pytest.raises(ConfigError, match="spatial_downsample must be a power of 2"):
        parse_params({"autoencoder": {"model": {"type": "vqgan3d", "spatial_downsample": 6}}})


def test_quantize_snaps_to_codes_and_a_code_quantizes_to_itself() -> None:
    q = EMAQuantizer(codebook_size=6, dim=3, decay=0.9, dead_threshold=0.0).eval()
    q.initialized.fill_(True)  # a trained codebook: no data-dependent initialisation
    codes = q.codebook.clone()
    grid = codes[torch.tensor([0, 5, 2, 2])].t().reshape(1, 3, 1, 2, 2)  # four latents that are codes
    torch.testing.assert_close(q.quantize(grid), grid)
    near = grid + 1e-3 * torch.randn_like(grid)
    torch.testing.assert_close(q.quantize(near), grid)
    out, commitment, stats = q.train()(near)
    assert commitment.item() == pytest.approx(float((near - grid).pow(2).mean()), rel=1e-4)
    assert stats["codes_used"] == pytest.approx(3 / 6)  # codes 0, 5, 2


def test_dead_codes_restart_on_encoder_outputs() -> None:
    torch.manual_seed(0)
    q = EMAQuantizer(codebook_size=8, dim=2, decay=0.5, dead_threshold=0.5).train()
    data = torch.tensor([[5.0, 5.0], [-5.0, 5.0]]).repeat(8, 1)  # two clusters
    z = data.t().reshape(1, 2, 1, 4, 4)
    for _ in range(6):
        q(z)
    # every code either sits on a cluster or was restarted onto one: none is left far from the data
    dist = torch.cdist(q.codebook, torch.tensor([[5.0, 5.0], [-5.0, 5.0]])).min(dim=1).values
    assert dist.max() < 1e-3


@pytest.mark.slow
def test_the_vqgan_learns_and_uses_its_codebook() -> None:
    """A few hundred CPU steps on smooth moving blobs: PSNR climbs well above its start and more than a quarter of
    the codes are in use (a codebook collapsed onto a couple of codes could not reconstruct the variety)."""
    torch.manual_seed(0)
    cfg = AutoencoderConfig(
        model=VQGAN3DConfig(**TINY),
        loss=AELossConfig(lpips_weight=0.0, pixel_loss="mse"),
        train=TrainConfig(lr=3e-3, betas=[0.9, 0.99]),
    )
    state = build_autoencoder_state(cfg, DATA, no_perceptual, torch.device("cpu"))
    x = clips(4)
    with torch.no_grad():
        before = float(psnr(x, state.model.eval()(x).clamp(-1, 1)).mean())
    g = torch.Generator().manual_seed(0)
    for step in range(200):
        metrics = autoencoder_train_step(
            state, x, cfg.loss, step, grad_clip=1.0, precision="fp32", generator=g
        )
    with torch.no_grad():
        after = float(psnr(x, state.model.eval()(x).clamp(-1, 1)).mean())
    print(f"vqgan3d PSNR {before:.1f} -> {after:.1f} dB, codes used {metrics['codes_used']:.2f}")
    assert after > before + 8, (before, after)
    assert {"mse", "vq_commitment", "perplexity", "codes_used"} <= metrics.keys()
    assert metrics["codes_used"] > 0.25 and metrics["perplexity"] > 4


def test_resume_is_exact_with_codebook_and_discriminators(tmp_path: Path) -> None:
    cfg = AutoencoderConfig(
        model=VQGAN3DConfig(**TINY),
        loss=AELossConfig(lpips_weight=0.0, gan_start_step=2, disc_channels=8, disc_layers=2),
        train=TrainConfig(lr=1e-3),
    )
    x, device = clips(2), torch.device("cpu")

    def run(state, start: int, stop: int) -> None:
        for step in range(start, stop):
            g = torch.Generator().manual_seed(step)
            autoencoder_train_step(state, x, cfg.loss, step, grad_clip=1.0, precision="fp32", generator=g)

    torch.manual_seed(3)
    straight = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    run(straight, 0, 6)
    torch.manual_seed(3)
    first = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    run(first, 0, 3)
    save_checkpoint(tmp_path / "ck.pt", autoencoder_checkpoint(first, 3, cfg, DATA))
    torch.manual_seed(99)
    resumed = build_autoencoder_state(cfg, DATA, no_perceptual, device)
    run(resumed, restore_autoencoder_state(resumed, load_checkpoint(tmp_path / "ck.pt")), 6)
    for module in ("model", "discriminator"):
        a, b = getattr(straight, module).state_dict(), getattr(resumed, module).state_dict()
        assert {
            "quantizer.codebook",
            "quantizer.cluster_size",
            "latent_mean",
        } <= a.keys() or module != "model"
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=f"{module}.{key}")
