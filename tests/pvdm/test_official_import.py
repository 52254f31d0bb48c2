"""`pvdm import --pvdm-autoencoder`: the official PVDM autoencoder, imported from its state dict, reproduces the
official code's latents and reconstructions.

The fixtures (tests/fixtures/official/) were written by bench/official_fixture.py from the official code (its
docstring has the commands): the official weights at two small sizes, a fixed input, and the official `extract`
and decoder outputs. Nothing of the official code is in this project."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pvdm.checkpoint import load_checkpoint
from pvdm.cli import main
from pvdm.families.registry import build_autoencoder, load_autoencoder
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.importing import WeightImportError, import_pvdm_autoencoder, infer_pvdm_autoencoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
CASES = ["pvdm_ae_small.pt", "pvdm_ae_8frames.pt"]
TOLERANCE = 1e-5  # fp32


def fixture(name: str) -> dict:
    """A fixture, its weights as the float32 tensors the official code ran with (stored as float16 values)."""
    fx = torch.load(FIXTURES / name, weights_only=True)
    return fx | {"state_dict": {k: v.float() for k, v in fx["state_dict"].items()}}


def official_file(tmp_path: Path, state: dict, prefix: str = "") -> Path:
    """The state dict as the official trainer saves it (`torch.save(model.module.state_dict())`)."""
    path = tmp_path / "model_last.pth"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path


@pytest.mark.parametrize("name", CASES)
def test_imported_autoencoder_matches_the_official_outputs(name: str, tmp_path: Path) -> None:
    fx = fixture(name)
    done = import_pvdm_autoencoder(official_file(tmp_path, fx["state_dict"]), tmp_path / "autoencoder.pt")

    c, model = fx["config"], done.autoencoder.model
    assert (done.data.resolution, done.data.frames) == (c["resolution"], c["frames"])
    assert (model.layout, model.width, model.heads, model.patch_size, model.latent_channels) == (
        "official", c["width"], c["heads"], 8, c["latent_channels"],
    )  # fmt: skip
    assert (model.encoder_depth, model.decoder_depth, model.projection_depth, model.mlp_ratio) == (
        c["encoder_depth"], c["decoder_depth"], c["projection_depth"], 4.0,
    )  # fmt: skip
    assert (model.official.head_dim, model.official.projection_mlp) == (c["head_dim"], c["projection_mlp"])
    assert model.official.projection_head_width(model.width) == c["width"] // 8

    ae = load_autoencoder(load_checkpoint(tmp_path / "autoencoder.pt"))
    with torch.no_grad():
        latent = ae.encode(fx["input"].float())
        recon = ae.decode(fx["latent"])
    latent_diff = (latent - fx["latent"]).abs().max().item()
    recon_diff = (recon - fx["reconstruction"]).abs().max().item()
    print(
        f"{name}: max |latent - official| {latent_diff:.3g}, max |reconstruction - official| {recon_diff:.3g}"
    )
    assert latent.shape == fx["latent"].shape and recon.shape == fx["reconstruction"].shape
    assert latent_diff <= TOLERANCE and recon_diff <= TOLERANCE


def test_prefixed_and_nested_state_dicts_import(tmp_path: Path) -> None:
    state = fixture("pvdm_ae_8frames.pt")["state_dict"]
    prefixed = official_file(tmp_path, state, prefix="module.")  # saved from DistributedDataParallel
    assert import_pvdm_autoencoder(prefixed, tmp_path / "a.pt").data.frames == 8
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "nested.pth")
    assert import_pvdm_autoencoder(tmp_path / "nested.pth", tmp_path / "b.pt").data.resolution == 16


def test_cli_import(tmp_path: Path) -> None:
    source = official_file(tmp_path, fixture("pvdm_ae_8frames.pt")["state_dict"])
    args = ["import", "--pvdm-autoencoder", str(source), "--out", str(tmp_path / "models")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "resolution 16, frames 8, width 24, heads 1" in result.output
    assert "assumed: projection heads: 4" in result.output
    assert load_checkpoint(tmp_path / "models" / "autoencoder.pt")["config"]["autoencoder"]["model"][
        "layout"
    ] == ("official")
    again = CliRunner().invoke(main, args)  # an existing model is not replaced silently
    assert again.exit_code != 0 and "--force" in again.output
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0


def _import_error(tmp_path: Path, state: dict) -> str:
    with pytest.raises(WeightImportError) as err:
        import_pvdm_autoencoder(official_file(tmp_path, state), tmp_path / "autoencoder.pt")
    message = str(err.value)
    assert "\n" not in message
    assert not (tmp_path / "autoencoder.pt").exists()
    return message


def test_missing_extra_and_misshapen_tensors_are_named(tmp_path: Path) -> None:
    state = fixture("pvdm_ae_8frames.pt")["state_dict"]
    gone = "decoder.layers.1.1.fn.to_out.0.bias"
    message = _import_error(tmp_path, {k: v for k, v in state.items() if k != gone})
    assert f"missing {gone}" in message

    key = "encoder.layers.0.1.fn.to_qkv.weight"
    bad = dict(state, **{key: torch.zeros(31, 24), "decoder.extra.weight": torch.zeros(2)})
    message = _import_error(tmp_path, bad)
    assert "unexpected decoder.extra.weight" in message
    assert f"misshapen {key} (31, 24) (expected (30, 24))" in message


def test_files_that_are_not_state_dicts_fail_clearly(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(WeightImportError, match="not a state dict"):
        import_pvdm_autoencoder(tmp_path / "list.pth", tmp_path / "out.pt")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightImportError, match="not a readable weights-only checkpoint"):
        import_pvdm_autoencoder(tmp_path / "junk.pth", tmp_path / "out.pt")
    torch.save({"unet.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightImportError, match="not an official PVDM autoencoder: missing xy_token"):
        import_pvdm_autoencoder(tmp_path / "other.pth", tmp_path / "out.pt")
    result = CliRunner().invoke(main, ["import", "--pvdm-autoencoder", str(tmp_path / "list.pth")])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1


def test_official_layout_makes_the_latents_its_config_promises() -> None:
    section, data = infer_pvdm_autoencoder(fixture("pvdm_ae_small.pt")["state_dict"])
    from pvdm.config.autoencoder import AutoencoderConfig

    model = build_autoencoder(AutoencoderConfig(model=section), data)
    assert section.latent_spec(data) == model.latent_spec
    assert model.latent_spec.shape == fixture("pvdm_ae_small.pt")["latent"].shape[1:]
    assert (
        TriplaneUNetConfig().accepts(model.latent_spec) is None
    )  # PVDM's denoiser takes the imported latents
