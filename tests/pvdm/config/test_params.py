from __future__ import annotations

from pathlib import Path

import pytest

from pvdm.config import ConfigError, Params, load_params, parse_params


def test_defaults_are_the_paper_geometry() -> None:
    p = Params()
    assert (p.data.resolution, p.data.frames, p.autoencoder.model.patch_size) == (256, 16, 8)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"autoencoder": {"train": {"lr": -1.0}}}, "autoencoder.train.lr: Input should be greater than 0"),
        ({"autoencoder": {"model": {"widht": 8}}}, "autoencoder.model.widht: unknown key"),
        ({"data": {"frames": "16"}}, "data.frames: Input should be a valid integer"),
        (
            {"data": {"resolution": 60}},
            "autoencoder.model.patch_size: data.resolution (60) must be divisible",
        ),
        ({"autoencoder": {"model": {"width": 30, "heads": 8}}}, "width (30) must be divisible by heads (8)"),
        ({"runtime": {"device": "tpu"}}, "runtime.device: Input should be 'auto', 'cpu' or 'cuda'"),
        ({"nosuchsection": {}}, "nosuchsection: unknown key"),
        (
            {"autoencoder": {"model": {"type": "vqgan9d"}}},
            "autoencoder.model: unknown type 'vqgan9d' (allowed: identity, ",
        ),
        (
            {"diffusion": {"denoiser": {"type": 3}}},
            "diffusion.denoiser: unknown type 3 (allowed: ",
        ),
        (
            {"autoencoder": {"model": {"type": "identity", "width": 8}}},
            "autoencoder.model.width: unknown key",
        ),
        (
            {"autoencoder": {"model": {"type": "identity"}}},
            "diffusion.denoiser.type: triplane_unet models packed triplane latents (C, L), not latents (3, 16, 256, "
            "256) (layout {'pixels': True}); autoencoder.model.type is 'identity' (got 'triplane_unet')",
        ),
        (
            {"autoencoder": {"model": {"type": "vqgan3d"}}, "diffusion": {"denoiser": {"type": "vidm"}}},
            "diffusion.denoiser.type: vidm generates pixels frame by frame: it needs the identity autoencoder's pixel "
            "clips, not latents (256, 4, 32, 32)",
        ),
        ({"unet": {}}, "unet: unknown key"),
    ],
)
def test_bad_values_name_the_key(params: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(params)
    assert needle in str(info.value)


def test_the_allowed_types_are_every_registered_family() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(
            {"autoencoder": {"model": {"type": "vqgan9d"}}, "diffusion": {"denoiser": {"type": "x"}}}
        )
    message = str(info.value)
    for name in ("identity", "triplane", "vqgan3d", "triplane_unet", "unet3d"):
        assert name in message, name


def test_a_section_without_type_is_the_pvdm_family_and_the_type_survives_a_dump() -> None:
    p = parse_params({"autoencoder": {"model": {"width": 16, "heads": 2}}})
    assert p.autoencoder.model.type == "triplane" and p.diffusion.denoiser.type == "triplane_unet"
    dumped = p.model_dump(mode="json")
    assert dumped["autoencoder"]["model"] == p.autoencoder.model.model_dump(
        mode="json"
    )  # every field, not the base's
    assert parse_params(dumped) == p


def test_yaml_reads_exponent_floats_and_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    others = "data: {}\npreprocess: {}\ndiffusion: {}\nsample: {}\nevaluate: {}\n"
    f.write_text(others + "autoencoder:\n  train:\n    lr: 2e-4\n")
    assert load_params(f).autoencoder.train.lr == pytest.approx(2e-4)
    f.write_text("autoencoder:\n  train:\n    lr: 2e-4\n")  # the other sections left out
    with pytest.raises(
        ConfigError, match="params.yaml: section 'data' is missing.*'diffusion'.*paper's sizes"
    ):
        load_params(f)
    f.write_text("- a list\n")
    with pytest.raises(ConfigError, match="params.yaml: expected a mapping"):
        load_params(f)
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")


def registered_presets() -> list[str]:
    from pvdm.families.registry import families

    return sorted({p for f in families() for p in f.presets.values()})


def test_every_shipped_preset_belongs_to_a_registered_family() -> None:
    root = Path(__file__).resolve().parents[3]
    shipped = ["params.yaml", *sorted(str(p.relative_to(root)) for p in (root / "params").glob("*.yaml"))]
    assert sorted(shipped) == registered_presets()


@pytest.mark.parametrize("name", registered_presets())
def test_shipped_params_files_validate(name: str) -> None:
    params = load_params(Path(__file__).resolve().parents[3] / name)
    if name.startswith("params/pvdm"):  # the PVDM presets are the paper's geometry: 2,048 latent positions
        assert (params.data.resolution, params.data.frames, params.autoencoder.model.patch_size) == (
            256,
            16,
            8,
        )
    if name.startswith("params/vdm"):  # pixel space: the identity autoencoder and the 3D UNet
        assert (params.autoencoder.model.type, params.diffusion.denoiser.type) == ("identity", "unet3d")
    if name.startswith("params/vqgan"):  # class-conditional 3D-VQGAN + 3D UNet
        assert (params.autoencoder.model.type, params.diffusion.denoiser.num_classes) == ("vqgan3d", 2 if
                name.endswith("vdm.yaml") else 101)  # fmt: skip
    if name.startswith("params/vidm"):  # pixel space, both generators with every addition of the paper on
        vidm = params.diffusion.denoiser
        assert (params.autoencoder.model.type, vidm.type) == ("identity", "vidm")
        assert vidm.truncation and vidm.robust_loss and vidm.implicit_condition and vidm.posgn
        assert params.diffusion.process.schedule == "ddpm_linear"
    if name.endswith("-256.yaml"):  # the PVDM paper's Table 5 geometry
        assert (params.data.resolution, params.data.frames) == (256, 16)


def test_duplicate_keys_and_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("sample:\n  steps: 4\n  steps: 5\n")
    with pytest.raises(ConfigError, match="duplicate key 'steps'"):
        load_params(f)
    for value in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="sample.guidance: Input should be a finite number"):
            parse_params({"sample": {"guidance": value}})


def test_a_negative_worker_count_is_one_line_from_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pvdm.cli import main

    result = CliRunner().invoke(main, ["preprocess", "--raw", str(tmp_path), "--workers", "-3"])
    assert (
        result.exit_code == 2
        and "Invalid value for '--workers': -3 is not in the range x>=0" in result.output
    )
    assert "Traceback" not in result.output


def test_sizes_that_would_need_terabytes_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"autoencoder.train.batch_size 4 x .* needs 3.0 TiB") as refused:
        parse_params({"data": {"resolution": 4096, "frames": 4096}})
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="data.resolution: Input should be less than or equal to 4096"):
        parse_params({"data": {"resolution": 10**6}})
    parse_params({"data": {"resolution": 64, "frames": 16}, "diffusion": {"train": {"batch_size": 512}}})


def test_validating_every_shipped_params_file_loads_no_torch() -> None:
    """The preprocess stage validates params.yaml on every run and needs no torch: importing it would add 2 s to
    each run (the family sections compute their latents without it: pvdm.families.latent_spec)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    code = (
        "import sys; from pathlib import Path; from pvdm.config import load_params; "
        "[load_params(p) for p in [Path('params.yaml'), *Path('params').glob('*.yaml')]]; "
        "print(sorted(m for m in ('torch', 'einops') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
