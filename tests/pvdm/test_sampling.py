"""Sampling from checkpoints: clip and any-length videos, repeatable with a seed, mismatched runs refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pvdm.checkpoint import save_checkpoint
from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig, ProcessConfig
from pvdm.config.sample import SampleConfig
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig
from pvdm.sampling import VideoModel, make_generator, sample_clips, sample_long_videos
from pvdm.training.autoencoder import autoencoder_checkpoint, build_autoencoder_state
from pvdm.training.diffusion import build_diffusion_state, diffusion_checkpoint

DATA = DataConfig(resolution=16, frames=4)
AE = AutoencoderConfig(
    model=TriplaneAEConfig(width=16, heads=2, patch_size=4, latent_channels=2, encoder_depth=1, decoder_depth=1,
                        projection_depth=1)
)  # fmt: skip
DIFF = DiffusionConfig(
    denoiser=TriplaneUNetConfig(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2,
                    norm_groups=4),
    process=ProcessConfig(timesteps=50),
)  # fmt: skip
CFG = SampleConfig(steps=3, batch_size=2)


@pytest.fixture
def checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    cpu = torch.device("cpu")
    ae = build_autoencoder_state(AE, DATA, lambda a, b: 0, cpu)
    save_checkpoint(tmp_path / "ae.pt", autoencoder_checkpoint(ae, 0, AE, DATA))
    diff = build_diffusion_state(DIFF, ae.model.latent_spec, cpu)
    with (
        torch.no_grad()
    ):  # a zero-init output layer would predict eps = 0 everywhere; make the model do something
        for p in diff.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    diff.ema.shadow = {k: v.detach().clone() for k, v in diff.model.state_dict().items()}
    save_checkpoint(tmp_path / "diff.pt", diffusion_checkpoint(diff, 0, DIFF, ae.model.latent_spec))
    return tmp_path / "ae.pt", tmp_path / "diff.pt"


def test_clips_and_long_videos_have_the_requested_frames(checkpoints: tuple[Path, Path]) -> None:
    model = VideoModel.load(*checkpoints, torch.device("cpu"))
    clips = sample_clips(model, 3, CFG, make_generator(torch.device("cpu"), 0))
    assert clips.shape == (3, 3, 4, 16, 16) and clips.abs().max() <= 1
    long = sample_long_videos(
        model, 2, 10, CFG, make_generator(torch.device("cpu"), 0)
    )  # 3 clips, trimmed to 10
    assert long.shape == (2, 3, 10, 16, 16)


def test_same_seed_same_video(checkpoints: tuple[Path, Path]) -> None:
    model = VideoModel.load(*checkpoints, torch.device("cpu"))
    a = sample_long_videos(model, 1, 8, CFG, make_generator(torch.device("cpu"), 5))
    b = sample_long_videos(model, 1, 8, CFG, make_generator(torch.device("cpu"), 5))
    c = sample_long_videos(model, 1, 8, CFG, make_generator(torch.device("cpu"), 6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_models_from_different_runs_are_refused(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    other = DataConfig(resolution=32, frames=4)
    ae = build_autoencoder_state(AE, other, lambda a, b: 0, torch.device("cpu"))
    save_checkpoint(tmp_path / "other_ae.pt", autoencoder_checkpoint(ae, 0, AE, other))
    with pytest.raises(ValueError, match="different runs"):
        VideoModel.load(tmp_path / "other_ae.pt", checkpoints[1], torch.device("cpu"))


def test_sample_cli_writes_a_long_video(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pvdm.cli import main
    from pvdm.data.video import read_video

    out = tmp_path / "video.mp4"
    args = ["sample", "--frames", "12", "--out", str(out), "--steps", "2", "--autoencoder", str(checkpoints[0]),
            "--diffusion", str(checkpoints[1]), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert read_video(out).shape == (12, 16, 16, 3)


def test_loading_a_checkpoint_as_the_wrong_role_is_a_clear_error(checkpoints: tuple[Path, Path]) -> None:
    from pvdm.checkpoint import load_checkpoint
    from pvdm.families.registry import FamilyError, load_autoencoder, load_diffusion

    ae_path, diff_path = checkpoints
    with pytest.raises(FamilyError, match="expected the checkpoint of an autoencoder, got 'diffusion'"):
        load_autoencoder(load_checkpoint(diff_path))
    with pytest.raises(FamilyError, match="expected the checkpoint of a diffusion, got 'autoencoder'"):
        load_diffusion(load_checkpoint(ae_path))


def test_a_triplane_denoiser_refuses_pixel_latents(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    """The identity family's autoencoder with PVDM's denoiser: refused when loading, naming both families."""
    from pvdm.families.identity.config import IdentityAEConfig
    from pvdm.families.registry import autoencoder_record

    identity = AutoencoderConfig(model=IdentityAEConfig())
    save_checkpoint(tmp_path / "id.pt", autoencoder_record(identity, DATA) | {"step": 0, "model": {}})
    with pytest.raises(ValueError, match=r"triplane_unet.*\(3, 4, 16, 16\).*different runs or families"):
        VideoModel.load(tmp_path / "id.pt", checkpoints[1], torch.device("cpu"))


def test_inspect_describes_a_checkpoint_from_its_record(checkpoints: tuple[Path, Path]) -> None:
    from click.testing import CliRunner

    from pvdm.cli import main

    result = CliRunner().invoke(main, ["inspect", str(checkpoints[1])])
    assert result.exit_code == 0, result.output
    assert "diffusion of the 'triplane_unet' family, step 0" in result.output
    assert "latents: shape (2, 48), in [-1, 1], prior uniform" in result.output
    result = CliRunner().invoke(main, ["inspect", "--json", str(checkpoints[0])])
    assert '"family": "triplane"' in result.output and '"kind": "autoencoder"' in result.output


def test_sample_cli_picks_a_class_by_name_or_draws_them(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from pvdm.cli import main

    conditional = DIFF.model_copy(update={"denoiser": DIFF.denoiser.model_copy(update={"num_classes": 2})})
    diff = build_diffusion_state(conditional, load_autoencoder_spec(checkpoints[0]), torch.device("cpu"))
    path = tmp_path / "cond.pt"
    save_checkpoint(
        path, diffusion_checkpoint(diff, 0, conditional, diff.model.latent_spec, ["cats", "dogs"])
    )
    base = ["sample", "--autoencoder", str(checkpoints[0]), "--diffusion", str(path), "--steps", "2"]
    result = CliRunner().invoke(main, [*base, "--class", "dogs", "--guidance", "3", "--num", "2",
                                       "--out", str(tmp_path / "d.mp4")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("(class dogs)") == 2
    result = CliRunner().invoke(
        main, [*base, "--num", "4", "--seed", "1", "--out", str(tmp_path / "any.gif")]
    )
    assert result.exit_code == 0 and result.output.count("(class ") == 4  # drawn, and said
    result = CliRunner().invoke(main, [*base, "--class", "birds", "--out", str(tmp_path / "b.mp4")])
    assert result.exit_code != 0 and "unknown class 'birds': the model knows cats, dogs" in result.output


def load_autoencoder_spec(path: Path):
    from pvdm.checkpoint import load_checkpoint
    from pvdm.families.registry import load_autoencoder

    return load_autoencoder(load_checkpoint(path)).latent_spec


def test_a_checkpoint_written_before_model_families_still_loads(checkpoints: tuple[Path, Path]) -> None:
    """The pre-family layout: config `unet` and `latent_shape`, parameters `time_embed.*`: loaded as today's."""
    from pvdm.checkpoint import load_checkpoint
    from pvdm.families.registry import load_diffusion

    new = load_checkpoint(checkpoints[1])
    old = dict(new)
    old["model"] = {k.replace("embed.time.", "time_embed."): v for k, v in new["model"].items()}
    old["ema"] = dict(new["ema"], shadow={k.replace("embed.time.", "time_embed."): v
                                          for k, v in new["ema"]["shadow"].items()})  # fmt: skip
    diffusion = {k: v for k, v in new["config"]["diffusion"].items() if k != "denoiser"}
    unet = {
        k: v for k, v in new["config"]["diffusion"]["denoiser"].items() if k not in ("type", "num_classes")
    }
    layout = new["config"]["latent_spec"]["layout"]
    old["config"] = {"diffusion": diffusion | {"unet": unet}, "latent_shape": layout}
    assert any(k.startswith("time_embed.") for k in old["model"])
    loaded, today = load_diffusion(old), load_diffusion(new)
    for key, value in today.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, msg=key)
