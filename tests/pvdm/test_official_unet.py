"""`pvdm import --pvdm-diffusion`: the official PVDM UNet, imported from its state dict, reproduces the official
code's noise prediction and its DDIM sampler's trajectories; the sizes are read from the tensors at any size; the
imported pair samples (one clip and Algorithm 1's long videos) and scores with the ordinary commands.

tests/fixtures/official/pvdm_unet_small.pt was written by `python -m bench.official_fixture --unet --official
<PVDM checkout> --out ...` from the official code (UNetModel in DiffusionWrapper, the DDPM sampler as
evals/eval.py builds it). Nothing of the official code is in this project."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pvdm.checkpoint import load_checkpoint
from pvdm.cli import main
from pvdm.config.diffusion import DiffusionConfig
from pvdm.data.video import probe
from pvdm.diffusion.samplers import ddim_sample, guided, sampling_timesteps
from pvdm.families.registry import build_denoiser, load_diffusion
from pvdm.families.triplane.config import OfficialUNetSizes, TriplaneUNetConfig
from pvdm.importing import (
    WeightImportError,
    import_pvdm_diffusion,
    infer_pvdm_diffusion,
    official_denoiser_state,
)
from pvdm.models.latent import LatentShape, triplane_spec
from tests.pvdm.official_files import FIXTURES, official_denoiser, official_file, official_pair

TOLERANCE = 1e-5  # fp32


@pytest.fixture(scope="module")
def fx() -> dict:
    data = torch.load(FIXTURES / "pvdm_unet_small.pt", weights_only=True)
    return data | {"state_dict": {k: v.float() for k, v in data["state_dict"].items()}}


def imported(fx: dict, tmp_path: Path):  # noqa: ANN201 (TrainedDiffusion)
    runner = CliRunner()
    source = official_file(tmp_path, fx["state_dict"])
    result = runner.invoke(
        main, ["import", "--pvdm-diffusion", str(source), "--out", str(tmp_path / "models")]
    )
    assert result.exit_code == 0, result.output
    assert "assumed: attention heads: 8" in result.output
    return load_diffusion(load_checkpoint(tmp_path / "models" / "diffusion.pt"))


def test_imported_unet_matches_the_official_noise_prediction(fx: dict, tmp_path: Path) -> None:
    trained = imported(fx, tmp_path)
    c, unet = fx["config"], trained.config.denoiser
    assert (unet.layout, unet.model_channels, unet.channel_mult, unet.num_res_blocks) == (
        "official", c["model_channels"], c["channel_mult"], c["num_res_blocks"],
    )  # fmt: skip
    assert unet.attention_resolutions == c["attention_resolutions"] and unet.use_scale_shift_norm
    assert unet.official == OfficialUNetSizes(cond_model=True, resblock_updown=True)
    assert trained.latent_spec.shape == (4, 2048)  # the official forward's 32 x 32 and 16 x 32 planes
    process = trained.config.process
    assert (process.schedule, process.beta_start, process.beta_end, process.convention) == (
        "linear", 0.0015, 0.0195, "official",
    )  # fmt: skip
    with torch.no_grad():
        eps = trained.model(fx["x_t"].float(), fx["t"], fx["cond"].float())
    diff = (eps - fx["eps_cond"]).abs().max().item()
    print(f"max abs diff to the official eps: {diff:.2e} (scale {fx['eps_cond'].abs().max().item():.2f})")
    assert diff < TOLERANCE


@pytest.mark.parametrize("which", ["ddim_null", "ddim_cond"])
def test_official_ddim_trajectory_is_reproduced(fx: dict, tmp_path: Path, which: str) -> None:
    """The official sampler (eta 1, w 0, x0 clipped to [-1, 1], its timesteps) from the same seeded noise."""
    trained = imported(fx, tmp_path)
    cond = None if which == "ddim_null" else fx["cond"].float()
    seed = fx["ddim_seeds"][0 if cond is None else 1]
    out = ddim_sample(
        guided(trained.model, cond),
        tuple(fx[which].shape),
        trained.schedule,
        steps=fx["config"]["steps"],
        generator=torch.Generator().manual_seed(seed),
        eta=1.0,
        x0_bound=trained.x0_bound,
    )
    diff = (out - fx[which]).abs().max().item()
    print(f"{which}: max abs diff {diff:.2e}")
    assert trained.x0_bound == 1.0 and diff < TOLERANCE


def test_official_timesteps_truncate_where_steps_do_not_divide_t() -> None:
    assert sampling_timesteps(1000, 100, "official") == sampling_timesteps(1000, 100)
    official, pvdm = sampling_timesteps(1000, 400, "official"), sampling_timesteps(1000, 400)
    assert official[:4] == [999, 996, 994, 991] and pvdm[:4] == [999, 997, 994, 992]
    assert len(official) == 400 and official[-1] == 1


SIZES = [
    dict(model_channels=32, channel_mult=[1, 2, 3], num_res_blocks=2, attention_resolutions=[1, 4]),
    dict(model_channels=64, channel_mult=[1], num_res_blocks=3, attention_resolutions=[], num_heads=4,
         use_scale_shift_norm=False),
    dict(model_channels=32, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2],
         official=dict(resblock_updown=False)),
    dict(model_channels=32, channel_mult=[1, 1], num_res_blocks=2, attention_resolutions=[1, 2],
         official=dict(cond_model=False)),
]  # fmt: skip


@pytest.mark.parametrize("sizes", SIZES)
def test_sizes_are_read_from_the_tensors_at_any_size(sizes: dict, tmp_path: Path) -> None:
    cfg = TriplaneUNetConfig(layout="official", **sizes)
    latent = LatentShape(3, 8, 8, 8)
    torch.manual_seed(0)
    model = build_denoiser(DiffusionConfig(denoiser=cfg), triplane_spec(latent))
    state = official_denoiser(model)
    assert infer_pvdm_diffusion(official_denoiser_state(state), heads=cfg.num_heads) == cfg
    done = import_pvdm_diffusion(official_file(tmp_path, state), tmp_path / "d.pt", latent, cfg.num_heads)
    model.load_state_dict(official_denoiser_state(state))
    reloaded = load_diffusion(load_checkpoint(done.path)).model
    z, cond = torch.randn(2, 3, latent.length), torch.randn(2, 3, latent.length)
    with torch.no_grad():
        assert torch.equal(
            reloaded(z, torch.tensor([3, 700]), cond), model.eval()(z, torch.tensor([3, 700]), cond)
        )


def test_paper_size_has_the_official_parameter_count() -> None:
    """base.yaml's UNet: 528,273,412 parameters (counted on the official UNetModel), 48 M more than pvdm's
    attention_layout official."""
    cfg = DiffusionConfig(denoiser=TriplaneUNetConfig(layout="official"))
    with torch.device("meta"):
        model = build_denoiser(cfg, triplane_spec(LatentShape(4, 16, 32, 32)))
    assert sum(p.numel() for p in model.parameters()) == 528_273_412


def test_wrong_checkpoints_fail_with_one_clear_error(fx: dict, tmp_path: Path) -> None:
    state = dict(fx["state_dict"])
    qkv = "diffusion_model.input_blocks.1.1.qkv.weight"
    state[qkv] = state[qkv][:-3]
    del state["diffusion_model.out.0.bias"]
    state["diffusion_model.extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightImportError) as err:
        import_pvdm_diffusion(official_file(tmp_path, state), tmp_path / "d.pt")
    message = str(err.value)
    assert "does not fit the official PVDM UNet" in message
    assert "missing out.0.bias" in message and "unexpected extra.weight" in message
    assert "misshapen input_blocks.1.1.qkv.weight (93, 32, 1) (expected (96, 32, 1))" in message
    assert not (tmp_path / "d.pt").exists()

    with pytest.raises(WeightImportError, match="not an official PVDM diffusion model: missing"):
        import_pvdm_diffusion(official_file(tmp_path, {"a.weight": torch.zeros(2)}), tmp_path / "d.pt")
    with pytest.raises(
        WeightImportError, match="condition buffer `zeros` has 2048 positions, the latents 36"
    ):
        import_pvdm_diffusion(
            official_file(tmp_path, fx["state_dict"]), tmp_path / "d.pt", LatentShape(4, 8, 2, 2)
        )


def test_imported_pair_samples_one_clip_and_long_videos(tmp_path: Path) -> None:
    """The official autoencoder and denoiser imported together: `pvdm sample` draws a clip and, clip by clip
    (Algorithm 1, the previous clip's latent as the condition), a 128-frame video."""
    ae_file, unet_file = official_pair(tmp_path)
    models, runner = tmp_path / "models", CliRunner()
    args = [
        "import",
        "--pvdm-autoencoder",
        str(ae_file),
        "--pvdm-diffusion",
        str(unet_file),
        "--out",
        str(models),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "latents: 16 frames, 3 x 3 planes" in result.output
    for frames in ("16", "128"):
        out = tmp_path / f"v{frames}.mp4"
        sample = ["sample", "--autoencoder", str(models / "autoencoder.pt"), "--diffusion",
                  str(models / "diffusion.pt"), "--frames", frames, "--steps", "2", "--eta", "1",
                  "--out", str(out), "--device", "cpu"]  # fmt: skip
        result = runner.invoke(main, sample)
        assert result.exit_code == 0, result.output
        assert f"({int(frames) // 16} clip(s) each)" in result.output
        info = probe(out)
        assert (info.frames, info.width, info.height) == (int(frames), 24, 24)


def test_cli_refuses_an_existing_output_wrong_heads_and_foreign_files(tmp_path: Path) -> None:
    """`pvdm import --pvdm-diffusion`'s error paths: each is one line that names the file and what to do."""
    ae_file, unet_file = official_pair(tmp_path / "official")
    models, runner = tmp_path / "models", CliRunner()

    def attempt(source: Path, *extra: str) -> str:
        result = runner.invoke(
            main, ["import", "--pvdm-diffusion", str(source), "--out", str(models), *extra]
        )
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        return result.output.strip()

    pair = ["--pvdm-autoencoder", str(ae_file), "--pvdm-diffusion", str(unet_file)]
    assert runner.invoke(main, ["import", *pair, "--out", str(models)]).exit_code == 0
    written = (models / "diffusion.pt").read_bytes()
    assert attempt(unet_file) == (
        f"Error: {models / 'diffusion.pt'} exists (a trained model?): pass --force to replace it, or --out DIR"
    )
    assert attempt(unet_file, "--force", "--diffusion-heads", "3") == (
        f"Error: {unet_file}: 3 attention heads do not divide the UNet's widths [32] (read from the tensors): give "
        "a head count that divides 32 (--diffusion-heads; the official 8 unless the authors changed it)"
    )
    junk = tmp_path / "notes.pth"
    junk.write_text("not a checkpoint")
    assert attempt(junk, "--force").startswith(f"Error: {junk}: not a readable weights-only checkpoint (")
    assert attempt(ae_file, "--force") == (
        f"Error: {ae_file}: not an official PVDM diffusion model: missing time_embed.0.weight, "
        "input_blocks.0.0.weight, out.2.weight (it holds the official autoencoder's: --pvdm-autoencoder)"
    )
    assert (models / "diffusion.pt").read_bytes() == written  # no failed attempt touched the imported model
