"""The proof of the model-family seam: a toy family defined in this file only (config sections, an autoencoder
and a denoiser of a few layers) goes through the library's public entry points, config to FVD, with no edit under
pvdm/ or pipelines/: params validation, training, latent caching, sampling (clips and long videos), evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config import ConfigError, EvaluateConfig, PreprocessConfig, SampleConfig, parse_params
from pvdm.config.models import ModelSpec, register_model_config
from pvdm.data.clips import ClipDataset, ClipStore, from_model_tensor
from pvdm.data.latents import LatentPairDataset, cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.data.video import write_video
from pvdm.evaluation import evaluate_run
from pvdm.families.registry import load_autoencoder, load_diffusion, register_autoencoder, register_denoiser
from pvdm.families.roles import Denoiser, LatentSpec, VideoAutoencoder
from pvdm.models.unet import timestep_embedding
from pvdm.sampling import VideoModel, make_generator, sample_clips, sample_long_videos
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext

# --- the toy family: its config sections ------------------------------------------------------------------------


@register_model_config("autoencoder")
class ToyAEConfig(ModelSpec):
    type: Literal["toy_ae"] = "toy_ae"
    channels: int = Field(4, ge=1)


@register_model_config("denoiser")
class ToyDenoiserConfig(ModelSpec):
    type: Literal["toy_denoiser"] = "toy_denoiser"
    width: int = Field(16, ge=4)


# --- its two roles ------------------------------------------------------------------------------------------------


class ToyAutoencoder(VideoAutoencoder):
    """Halves height and width with one strided 3D conv; unbounded latents with a normal prior."""

    def __init__(self, cfg: ToyAEConfig, frames: int, resolution: int) -> None:
        super().__init__()
        self.frames, self.resolution, self.channels = frames, resolution, cfg.channels
        self.enc = nn.Conv3d(3, cfg.channels, (1, 2, 2), stride=(1, 2, 2))
        self.dec = nn.ConvTranspose3d(cfg.channels, 3, (1, 2, 2), stride=(1, 2, 2))

    @property
    def latent_spec(self) -> LatentSpec:
        size = self.resolution // 2
        return LatentSpec(
            (self.channels, self.frames, size, size), bound=None, prior="normal", dtype="float32"
        )

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.enc(video)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.dec(latent)


class ToyDenoiser(Denoiser):
    """Two 3D convs over [z_t, cond] with a time embedding added in between."""

    def __init__(self, cfg: ToyDenoiserConfig, spec: LatentSpec) -> None:
        super().__init__()
        self.spec, c, w = spec, spec.shape[0], cfg.width
        self.inp = nn.Conv3d(2 * c, w, 3, padding=1)
        self.time = nn.Linear(w, w)
        self.out = nn.Conv3d(w, c, 3, padding=1)

    @property
    def latent_spec(self) -> LatentSpec:
        return self.spec

    def forward(self, z_t, t, cond=None, label=None):  # noqa: ANN001 - the Denoiser signature
        cond = torch.zeros_like(z_t) if cond is None else cond
        h = self.inp(torch.cat([z_t, cond], dim=1))
        h = h + self.time(timestep_embedding(t, h.shape[1]))[:, :, None, None, None]
        return self.out(F.silu(h))


register_autoencoder("toy_ae", lambda cfg, data: ToyAutoencoder(cfg, data.frames, data.resolution))
register_denoiser("toy_denoiser", ToyDenoiser)

PARAMS = {
    "data": {"resolution": 16, "frames": 8},
    "runtime": {"device": "cpu", "precision": "fp32", "seed": 0},
    "autoencoder": {
        "model": {"type": "toy_ae", "channels": 3},
        "loss": {"lpips_weight": 0.0},
        "train": {"steps": 30, "batch_size": 4, "lr": 0.01, "checkpoint_every": 15, "log_every": 5},
    },
    "diffusion": {
        "denoiser": {"type": "toy_denoiser", "width": 8},
        "process": {"timesteps": 100},
        "train": {"steps": 30, "batch_size": 4, "lr": 0.005, "checkpoint_every": 15, "log_every": 5},
    },
}


def test_an_unknown_family_type_is_one_line_naming_the_key_and_the_choices() -> None:
    bad = {**PARAMS, "autoencoder": {**PARAMS["autoencoder"], "model": {"type": "vqgan9d"}}}
    with pytest.raises(ConfigError) as err:
        parse_params(bad)
    line = str(err.value)
    assert "\n" not in line and "autoencoder.model: unknown type 'vqgan9d'" in line
    assert all(name in line for name in ("identity", "toy_ae", "triplane"))
    typo = {**PARAMS, "diffusion": {**PARAMS["diffusion"], "denoiser": {"type": "toy_denoiser", "widht": 8}}}
    with pytest.raises(ConfigError, match=r"^params: diffusion\.denoiser\.widht: unknown key$"):
        parse_params(typo)


@pytest.mark.slow
def test_a_family_defined_outside_pvdm_trains_caches_samples_and_evaluates(tmp_path: Path) -> None:
    params = parse_params(PARAMS)
    assert isinstance(params.autoencoder.model, ToyAEConfig) and params.diffusion.denoiser.width == 8
    generate_videos(tmp_path / "raw", 4, size=16, frames=24, fps=8, seed=2)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", params.data, PreprocessConfig(test_fraction=0.25))

    history = train_autoencoder(
        params.autoencoder,
        params.data,
        params.runtime,
        ClipDataset(tmp_path / "clips"),
        LocalContext(tmp_path / "ae"),
    )
    assert history.rows[-1]["loss"] < history.rows[0]["loss"]
    payload = load_checkpoint(latest_checkpoint(tmp_path / "ae"))
    assert payload["family"] == "toy_ae"
    ae = load_autoencoder(payload)
    assert isinstance(ae, ToyAutoencoder)

    store = cache_latents(ae, tmp_path / "clips", tmp_path / "latents", autoencoder_sha256="0" * 64)
    assert store.spec == ae.latent_spec and store.latents.shape == (
        len(ClipStore(tmp_path / "clips")),
        3,
        8,
        8,
        8,
    )

    dataset = LatentPairDataset(tmp_path / "latents")
    train_diffusion(params.diffusion, params.runtime, dataset, store.spec, LocalContext(tmp_path / "diff"))
    diffusion = load_diffusion(load_checkpoint(latest_checkpoint(tmp_path / "diff")))
    assert (
        isinstance(diffusion.model, ToyDenoiser) and diffusion.x0_bound is None
    )  # unbounded latents: no clip

    model = VideoModel(ae, diffusion, torch.device("cpu"))
    cfg = SampleConfig(steps=4, batch_size=3)
    clips = sample_clips(model, 3, cfg, make_generator(model.device, 0))
    long = sample_long_videos(model, 2, 20, cfg, make_generator(model.device, 1))  # 3 clips by Algorithm 1
    assert clips.shape == (3, 3, 8, 16, 16) and long.shape == (2, 3, 20, 16, 16)
    for folder, videos in (("clips", clips), ("long", long)):
        for i, video in enumerate(videos):
            write_video(tmp_path / "samples" / folder / f"{i}.mp4", from_model_tensor(video), 8)

    cfg = EvaluateConfig(fvd_num_real=4, fvd_num_fake=3, fvd_frames=8, fvd_long_frames=16, fvd_long_num=2, real_split="train",
                         recon_num_clips=2, batch_size=4, cache_real_stats=False)  # fmt: skip
    metrics = evaluate_run(
        cfg, ClipStore(tmp_path / "clips"), tmp_path / "samples", ae, torch.device("cpu"), "toy"
    )
    assert np.isfinite([metrics["fvd_16"], metrics["fvd_noise_latents"], metrics["recon_psnr"]]).all()
    assert metrics["n_fake"] == 3 and "fvd_long" in metrics
