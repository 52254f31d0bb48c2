"""`pvdm import --tats-vqgan`: TATS's 3D-VQGAN, imported from a Lightning checkpoint, reproduces the official code's
codes, embeddings and reconstructions, and its latents go through the pipeline's latent store.

The fixture (tests/fixtures/official/tats_vqgan_small.{ckpt,pt}) was written by bench/official_fixture_tats.py from
the official code (its docstring has the command): a Lightning-style checkpoint of the official VQGAN (batch norm,
downsample 2 x 4 x 4, n_hiddens 4, 32 codes of 8), a fixed input and the official outputs. Nothing of the official
code is in this project."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pvdm.checkpoint import load_checkpoint
from pvdm.cli import main
from pvdm.config import parse_params
from pvdm.data.clips import ClipDataset
from pvdm.data.latents import cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.families.registry import load_autoencoder
from pvdm.families.vqgan3d.importing import import_tats_vqgan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
CKPT = FIXTURES / "tats_vqgan_small.ckpt"
TOLERANCE = 1e-5  # fp32


def outputs() -> dict:
    return torch.load(FIXTURES / "tats_vqgan_small.pt", weights_only=True)


def lightning_payload() -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(CKPT, weights_only=True)


def cli_import(source: Path, out: Path, *extra: str):  # noqa: ANN201 (click's Result)
    return CliRunner().invoke(main, ["import", "--tats-vqgan", str(source), "--out", str(out), *extra])


def test_cli_import_matches_the_official_codes_and_reconstructions(tmp_path: Path) -> None:
    result = cli_import(CKPT, tmp_path / "models")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "the TATS 3D-VQGAN (vqgan3d, layout tats)" in out
    assert "n_hiddens 4, levels 2, embedding_dim 8, n_codes 32, norm batch, image_channels 3" in out
    assert "downsample [2, 4, 4], padding replicate, resolution 16, frames 4" in out
    assert (
        "image_discriminator (11 tensors), video_discriminator (11 tensors), perceptual_model (5 tensors)"
        in out
    )
    assert "argparse.Namespace allowed" in out and "assumed" not in out

    payload = load_checkpoint(tmp_path / "models" / "autoencoder.pt")
    assert (payload["kind"], payload["family"], payload["step"], payload["history"]) == (
        "autoencoder", "vqgan3d", 0, [],
    )  # fmt: skip
    model_cfg = payload["config"]["autoencoder"]["model"]
    assert (model_cfg["layout"], model_cfg["channels"], model_cfg["temporal_downsample"]) == ("tats", 4, 2)
    assert (model_cfg["spatial_downsample"], model_cfg["codebook_size"], model_cfg["codebook_dim"]) == (
        4,
        32,
        8,
    )
    assert model_cfg["tats"] == {"norm": "batch", "padding": "replicate"}

    fx, ae = outputs(), load_autoencoder(payload)
    video = fx["input"].float() * 2  # TATS's [-0.5, 0.5] as pvdm's [-1, 1]
    with torch.no_grad():
        embeddings, codes = ae.tats_encode(video)  # TATS's encode(video / 2, include_embeddings=True)
        lookup = ae.codebook.lookup(codes)  # the codes' vectors: what the diffusion latent normalises
        recon = ae(video) / 2  # back to TATS's range: compared with its forward
        decoded = ae.decode_codes(fx["codes"]) / 2
    diffs = {
        "embeddings": (embeddings - fx["embeddings"]).abs().max().item(),
        "code vectors": (lookup - fx["embeddings"]).abs().max().item(),
        "reconstruction (forward)": (recon - fx["reconstruction"]).abs().max().item(),
        "decode(codes)": (decoded - fx["decoded"]).abs().max().item(),
    }
    print("max |pvdm - official|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    assert torch.equal(codes, fx["codes"]) and fx["codes"].unique().numel() > 10
    assert max(diffs.values()) <= TOLERANCE


def test_prefixed_and_bare_state_dicts_import_with_what_they_assume(tmp_path: Path) -> None:
    payload = lightning_payload()
    wrapped = dict(payload, state_dict={f"model.{k}": v for k, v in payload["state_dict"].items()})
    torch.save(wrapped, tmp_path / "wrapped.ckpt")
    assert import_tats_vqgan(tmp_path / "wrapped.ckpt", tmp_path / "a.pt").data.resolution == 16

    torch.save(payload["state_dict"], tmp_path / "bare.pth")  # no hyper-parameters: weights_only suffices
    result = cli_import(tmp_path / "bare.pth", tmp_path / "bare")
    assert result.exit_code == 0, result.output
    assert "assumed: downsample 4 on every axis" in result.output
    assert "assumed: clip 128x128, 16 frames" in result.output and "note:" not in result.output


def _one_line_error(tmp_path: Path, payload: object, name: str = "edited.ckpt") -> str:
    torch.save(payload, tmp_path / name)
    result = cli_import(tmp_path / name, tmp_path / "models")
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "models" / "autoencoder.pt").exists()
    return result.output


def test_renamed_missing_misshapen_and_foreign_tensors_are_named(tmp_path: Path) -> None:
    payload = lightning_payload()
    state = payload["state_dict"]
    key = "decoder.conv_blocks.1.res2.conv1.conv.weight"
    renamed = {k.replace(key, "decoder.conv_blocks.1.res2.conv_1.conv.weight"): v for k, v in state.items()}
    message = _one_line_error(tmp_path, dict(payload, state_dict=renamed))
    assert (
        f"missing {key}" in message and "unexpected decoder.conv_blocks.1.res2.conv_1.conv.weight" in message
    )

    bad = dict(state, **{"codebook.z_avg": torch.zeros(32, 7)})
    message = _one_line_error(tmp_path, dict(payload, state_dict=bad))
    assert "misshapen codebook.z_avg (32, 7) (expected (32, 8))" in message

    foreign = dict(state, **{"text_encoder.weight": torch.zeros(2)})
    message = _one_line_error(tmp_path, dict(payload, state_dict=foreign))
    assert "unexpected text_encoder.weight" in message and "image_discriminator." in message

    edited = argparse.Namespace(**{**vars(payload["hyper_parameters"]["args"]), "n_codes": 64})
    message = _one_line_error(tmp_path, dict(payload, hyper_parameters={"args": edited}))
    assert "n_codes 64 (tensors: 32)" in message


def test_corrupted_and_foreign_files_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "cut.ckpt").write_bytes(CKPT.read_bytes()[:50_000])
    result = cli_import(tmp_path / "cut.ckpt", tmp_path / "models")
    assert result.exit_code != 0 and "not a readable weights-only checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1
    message = _one_line_error(tmp_path, {"unet.weight": torch.zeros(2)}, "other.pth")
    assert "not a TATS VQGAN: no encoder.conv_first.conv.weight" in message


class Payload:
    """A pickled object that would run code on load: it creates a folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return os.makedirs, (str(self.marker),)


def test_a_pickled_code_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    payload = lightning_payload()
    marker = tmp_path / "ran"
    evil = dict(payload, hyper_parameters={"args": payload["hyper_parameters"]["args"], "x": Payload(marker)})
    message = _one_line_error(tmp_path, evil)
    assert "refused" in message and "os.makedirs" in message
    assert not marker.exists()


def test_imported_vqgan_caches_latents_and_decodes_them(tmp_path: Path) -> None:
    """The cache_latents stage's function encodes clips with the imported model into latents of its LatentSpec;
    decoding the float16 store gives TATS's decode of the clips' codes."""
    assert cli_import(CKPT, tmp_path / "models").exit_code == 0
    ae = load_autoencoder(load_checkpoint(tmp_path / "models" / "autoencoder.pt"))
    params = parse_params({"data": {"resolution": 16, "frames": 4},
                           "preprocess": {"test_fraction": 0.0, "workers": 1}})  # fmt: skip
    generate_videos(tmp_path / "raw", 2, size=16, frames=8, fps=8, seed=1)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", params.data, params.preprocess, progress=False)
    store = cache_latents(
        ae, tmp_path / "clips", tmp_path / "latents", autoencoder_sha256="0" * 64, progress=False
    )

    assert store.spec == ae.latent_spec and store.spec.shape == (8, 2, 4, 4) and store.spec.prior == "normal"
    latents = torch.from_numpy(store.latents[:].astype("float32"))
    clips = torch.stack([ClipDataset(tmp_path / "clips")[i] for i in range(len(latents))])
    assert latents.shape == (len(clips), *store.spec.shape)
    assert abs(latents.mean().item()) < 1.0 and 0.2 < latents.std().item() < 3.0  # normalised by the codebook
    with torch.no_grad():
        decoded = ae.decode(latents)
        expected = ae.decode_codes(ae.codes(clips))
    assert decoded.shape == clips.shape
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-6)


def test_tats_layout_config_rules() -> None:
    from pvdm.families.vqgan3d.config import VQGAN3DConfig

    with pytest.raises(ValueError, match="2 x channels"):
        VQGAN3DConfig(layout="tats", channels=4)  # group norm: TATS's 32 groups
    cfg = VQGAN3DConfig(layout="tats", channels=4, temporal_downsample=2, spatial_downsample=8,
                        tats={"norm": "batch"})  # fmt: skip
    assert cfg.levels == 3


def test_tats_layout_fine_tunes_through_the_straight_through_estimator(tmp_path: Path) -> None:
    """Training mode (the train_autoencoder stage's call): the encoder gets a gradient, the codebook stays."""
    assert cli_import(CKPT, tmp_path / "models").exit_code == 0
    ae = load_autoencoder(load_checkpoint(tmp_path / "models" / "autoencoder.pt")).train()
    codebook = ae.codebook.embeddings.clone()
    recon, losses, stats = ae(outputs()["input"].float() * 2, with_losses=True)
    (recon.abs().mean() + losses["vq_commitment"]).backward()
    assert ae.encoder.conv_first.conv.weight.grad.abs().sum() > 0
    assert torch.equal(ae.codebook.embeddings, codebook) and 1.0 <= stats["perplexity"] <= 32


def test_import_takes_exactly_one_checkpoint(tmp_path: Path) -> None:
    both = ["import", "--tats-vqgan", str(CKPT), "--pvdm-autoencoder", str(CKPT), "--out", str(tmp_path)]
    for args in (both, ["import", "--out", str(tmp_path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "give one checkpoint" in result.output, result.output
