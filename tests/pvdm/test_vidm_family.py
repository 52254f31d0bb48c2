"""The VIDM family through the library's entry points at tiny size, class-conditional: preprocess with class
folders, the identity autoencoder's manifest, both generators trained by the shared diffusion loop (resumable),
videos of any length drawn frame by frame and guided by class, and SpyNet started from pinned weights."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config import ConfigError, SampleConfig, parse_params
from pvdm.data.latents import LatentPairDataset, cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.families.identity.build import IdentityAutoencoder
from pvdm.families.registry import FamilyError, build_denoiser, load_diffusion
from pvdm.sampling import VideoModel, make_generator, sample_clips, sample_long_videos
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext

pytestmark = pytest.mark.usefixtures("one_thread")

DENOISER = {
    "type": "vidm",
    "model_channels": 8,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [2],
    "num_heads": 2,
    "norm_groups": 4,
    "num_classes": 2,
    "flow": {"levels": 2, "widths": [4, 4], "kernel": 3},
}
PARAMS = {
    "data": {"resolution": 16, "frames": 8},
    "runtime": {"device": "cpu", "precision": "fp32"},
    "preprocess": {"labels": "folder", "test_fraction": 0.0, "workers": 1},
    "autoencoder": {"model": {"type": "identity"}},
    "diffusion": {
        "denoiser": DENOISER,
        "process": {"timesteps": 100},
        "train": {"steps": 6, "batch_size": 4, "checkpoint_every": 3, "log_every": 3},
    },
}  # fmt: skip


def with_denoiser(**changes: object) -> dict:
    params = copy.deepcopy(PARAMS)
    params["diffusion"]["denoiser"] |= changes
    return params


@pytest.mark.slow
def test_vidm_trains_resumes_and_draws_videos_of_any_length_by_class(tmp_path: Path) -> None:
    params = parse_params(PARAMS)
    generate_videos(tmp_path / "raw", 4, size=16, frames=16, fps=8, seed=4, classes=True)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", params.data, params.preprocess, progress=False)
    store = cache_latents(IdentityAutoencoder(8, 16), tmp_path / "clips", tmp_path / "latents",
                          autoencoder_sha256="0" * 64)  # fmt: skip
    dataset = LatentPairDataset(tmp_path / "latents")
    history = train_diffusion(
        params.diffusion, params.runtime, dataset, store.spec, LocalContext(tmp_path / "d")
    )
    assert {"content_loss", "motion_loss", "loss"} <= history.rows[-1].keys()
    # a resumed run continues from the checkpoint at step 3 and ends where the uninterrupted one did
    uninterrupted = load_checkpoint(latest_checkpoint(tmp_path / "d"))
    Path(latest_checkpoint(tmp_path / "d")).unlink()
    train_diffusion(params.diffusion, params.runtime, dataset, store.spec, LocalContext(tmp_path / "d"))
    payload = load_checkpoint(latest_checkpoint(tmp_path / "d"))
    assert payload["family"] == "vidm" and payload["step"] == 6
    for name, value in uninterrupted["model"].items():
        torch.testing.assert_close(payload["model"][name], value, msg=name)
    diffusion = load_diffusion(payload)
    assert diffusion.label_names == ["checkers", "stripes"]

    model = VideoModel(IdentityAutoencoder(8, 16), diffusion, torch.device("cpu"))
    cfg = SampleConfig(sampler="ddpm", steps=3, batch_size=2, guidance=2.0)
    labels = torch.tensor([0, 1])
    clips = sample_clips(model, 2, cfg, make_generator(model.device, 0), labels)
    assert clips.shape == (2, 3, 8, 16, 16) and clips.abs().max() <= 1.0
    again = sample_clips(model, 2, cfg, make_generator(model.device, 0), labels)
    torch.testing.assert_close(clips, again)  # seeded
    long = sample_long_videos(model, 1, 21, cfg, make_generator(model.device, 0), labels[:1])
    assert long.shape == (1, 3, 21, 16, 16)  # any length: not a multiple of the clip's 8 frames
    frame, t = torch.randn(2, 3, 16, 16), torch.tensor([50, 50])
    with torch.no_grad():  # the class reaches both generators
        for kwargs in ({}, {"n": torch.tensor([1, 1]), "first": frame, "latest": frame}):
            assert not torch.equal(diffusion.model(frame, t, label=labels, **kwargs),
                                   diffusion.model(frame, t, label=labels.flip(0), **kwargs))  # fmt: skip


def test_vidm_needs_the_identity_autoencoder_and_frames_its_unet_can_halve() -> None:
    bad = copy.deepcopy(PARAMS)
    bad["autoencoder"] = {"model": {"type": "vqgan3d"}}
    with pytest.raises(ConfigError, match="vidm generates pixels.*identity"):
        parse_params(bad)
    with pytest.raises(ConfigError, match=r"data.resolution \(18\) must be divisible by 4"):
        parse_params(with_denoiser(channel_mult=[1, 2, 2]) | {"data": {"resolution": 18, "frames": 8}})


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ({"weights": "spynet.pt"}, "weights_sha256 is required"),
        ({"weights": "/etc/passwd", "weights_sha256": "0" * 64}, "leaves the project folder"),
        ({"weights": "../x.pt", "weights_sha256": "0" * 64}, "leaves the project folder"),
        ({"weights": "x.pt", "weights_sha256": "XYZ"}, "weights_sha256"),
        ({"kernel": 4}, "kernel must be odd"),
    ],
)
def test_bad_flow_settings_fail_before_any_work(flow: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params(with_denoiser(flow=DENOISER["flow"] | flow))


def test_spynet_starts_from_pinned_weights_and_refuses_others(tmp_path: Path) -> None:
    spec = IdentityAutoencoder(8, 16).latent_spec
    source = build_denoiser(parse_params(PARAMS).diffusion, spec)
    with torch.no_grad():
        for p in source.motion.flow.parameters():
            p.normal_()
    torch.save(source.motion.flow.state_dict(), tmp_path / "spynet.pt")
    digest = hashlib.sha256((tmp_path / "spynet.pt").read_bytes()).hexdigest()
    pinned = parse_params(
        with_denoiser(flow=DENOISER["flow"] | {"weights": "spynet.pt", "weights_sha256": digest})
    )
    model = build_denoiser(pinned.diffusion, spec)
    model.prepare_training(tmp_path)
    for a, b in zip(model.motion.flow.parameters(), source.motion.flow.parameters(), strict=True):
        assert torch.equal(a, b)

    wrong = parse_params(
        with_denoiser(flow=DENOISER["flow"] | {"weights": "spynet.pt", "weights_sha256": "1" * 64})
    )
    with pytest.raises(FamilyError, match="has SHA-256 .* not the file the params name"):
        build_denoiser(wrong.diffusion, spec).prepare_training(tmp_path)
    other = with_denoiser(flow={"levels": 2, "widths": [4, 6], "kernel": 3, "weights": "spynet.pt",
                                "weights_sha256": digest})  # fmt: skip
    with pytest.raises(FamilyError, match="not a state dict of this SpyNet"):
        build_denoiser(parse_params(other).diffusion, spec).prepare_training(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "link.pt").symlink_to(tmp_path / "spynet.pt")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.pt").symlink_to(tmp_path / "spynet.pt")  # a link inside that points outside
    linked = with_denoiser(flow=DENOISER["flow"] | {"weights": "link.pt", "weights_sha256": digest})
    with pytest.raises(ConfigError, match="outside the project"):
        build_denoiser(parse_params(linked).diffusion, spec).prepare_training(project)
