"""The 3D-VQGAN + VDM family end to end at tiny size, class-conditional: preprocess with class folders, train the
VQGAN, cache its normalised pre-quantisation latents, train the class-conditional 3D UNet, sample guided by class."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config import SampleConfig, parse_params
from pvdm.data.clips import ClipDataset
from pvdm.data.latents import LatentPairDataset, cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.families.registry import load_autoencoder, load_diffusion
from pvdm.sampling import VideoModel, make_generator, sample_clips, sample_long_videos
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext

PARAMS = {
    "data": {"resolution": 16, "frames": 8},
    "runtime": {"device": "cpu", "precision": "fp32"},
    "preprocess": {"labels": "folder", "test_fraction": 0.0, "workers": 1},
    "autoencoder": {
        "model": {"type": "vqgan3d", "channels": 8, "channel_mult": [1, 2], "temporal_downsample": 2,
                  "spatial_downsample": 4, "codebook_size": 32, "codebook_dim": 4, "norm_groups": 4},
        "loss": {"pixel_loss": "mse", "lpips_weight": 0.0},
        "train": {"steps": 20, "batch_size": 4, "lr": 0.002, "checkpoint_every": 10, "log_every": 5},
    },
    "diffusion": {
        "denoiser": {"type": "unet3d", "model_channels": 8, "channel_mult": [1], "attention_resolutions": [1],
                     "num_heads": 2, "norm_groups": 4, "num_classes": 2},
        "process": {"timesteps": 100, "clip_x0": False},
        "train": {"steps": 10, "batch_size": 4, "checkpoint_every": 10, "log_every": 5},
    },
}  # fmt: skip


@pytest.mark.slow
def test_vqgan_family_trains_caches_and_samples_by_class(tmp_path: Path) -> None:
    params = parse_params(PARAMS)
    generate_videos(tmp_path / "raw", 4, size=16, frames=16, fps=8, seed=4, classes=True)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", params.data, params.preprocess, progress=False)

    history = train_autoencoder(params.autoencoder, params.data, params.runtime, ClipDataset(tmp_path / "clips"),
                                LocalContext(tmp_path / "ae"))  # fmt: skip
    assert {"mse", "vq_commitment", "perplexity", "codes_used"} <= history.rows[-1].keys()
    ae = load_autoencoder(load_checkpoint(latest_checkpoint(tmp_path / "ae")))
    assert float(ae.latent_var.mean()) != 1.0  # the running statistics were fitted, and saved
    store = cache_latents(ae, tmp_path / "clips", tmp_path / "latents", autoencoder_sha256="0" * 64)
    assert store.spec.codebook_size == 32 and store.latents.shape[1:] == (4, 4, 4, 4)
    assert store.label_names == ["checkers", "stripes"]
    # the cache holds the encoder's output normalised by the checkpoint's running statistics (at demo size, after
    # 800 steps, the cached latents have mean 0.00 and std 0.96; 20 steps are too few for the statistics to settle)
    x = ClipDataset(tmp_path / "clips")[0][None]
    with torch.no_grad():
        z_e = ae.encoder(x)
        torch.testing.assert_close(ae._denormalise(ae.encode(x)), z_e, rtol=1e-4, atol=1e-4)
    cached = torch.from_numpy(store.latents[0].astype("float32"))
    torch.testing.assert_close(cached, ae.encode(x)[0], rtol=2e-3, atol=2e-3)  # float16 storage

    dataset = LatentPairDataset(tmp_path / "latents")
    train_diffusion(params.diffusion, params.runtime, dataset, store.spec, LocalContext(tmp_path / "diff"))
    diffusion = load_diffusion(load_checkpoint(latest_checkpoint(tmp_path / "diff")))
    assert diffusion.label_names == ["checkers", "stripes"] and diffusion.x0_bound is None

    model = VideoModel(ae, diffusion, torch.device("cpu"))
    cfg = SampleConfig(steps=3, batch_size=2, guidance=2.0)
    labels = torch.tensor([0, 1])
    clips = sample_clips(model, 2, cfg, make_generator(model.device, 0), labels)
    assert clips.shape == (2, 3, 8, 16, 16)
    z, t = torch.randn(2, *store.spec.shape), torch.tensor([50, 50])
    with torch.no_grad():  # the class reaches the denoiser (decoded videos may snap to the same codes)
        assert not torch.equal(
            diffusion.model(z, t, label=labels), diffusion.model(z, t, label=labels.flip(0))
        )
    long = sample_long_videos(model, 1, 20, cfg, make_generator(model.device, 0), labels[:1])
    assert long.shape == (1, 3, 20, 16, 16)
    # decoding snaps to codes: two latents that round to the same codes decode identically
    z = torch.randn(1, *store.spec.shape)
    nudged = z + 1e-4 * torch.randn_like(z)
    with torch.no_grad():
        torch.testing.assert_close(ae.decode(z), ae.decode(nudged))
