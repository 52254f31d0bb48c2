"""`pvdm import`: the authors' released weights as ordinary pvdm checkpoints (the logic is pvdm.importing)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import")
@click.option(
    "--pvdm-autoencoder",
    "pvdm_autoencoder",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An official PVDM autoencoder checkpoint (sihyun-yu/PVDM: a state dict, e.g. model_last.pth). Its sizes "
    "are read from the tensors. Written as autoencoder.pt.",
)
@click.option(
    "--pvdm-diffusion",
    "pvdm_diffusion",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An official PVDM diffusion checkpoint (ema_model_{step}.pth, or model_{step}.pth: a state dict). Its "
    "sizes are read from the tensors; its latents are the autoencoder's imported with it, else those of "
    "--out/autoencoder.pt, else the official 16 x 32 x 32. Written as diffusion.pt.",
)
@click.option(
    "--diffusion-heads",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Attention heads of the diffusion UNet (not readable from the tensors; the official base.yaml's 8).",
)
@click.option(
    "--tats-vqgan",
    "tats_vqgan",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TATS 3D-VQGAN checkpoint (songweige/TATS: a Lightning .ckpt, or its state dict). Written as a vqgan3d "
    "autoencoder, layout tats; sizes from the tensors and the hyper-parameters.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/models"),
    show_default=True,
    help="Folder the pvdm checkpoints are written to (autoencoder.pt, diffusion.pt).",
)
@click.option("--force", is_flag=True, help="Replace existing checkpoints in --out.")
def import_(
    pvdm_autoencoder: Path | None,
    pvdm_diffusion: Path | None,
    diffusion_heads: int,
    tats_vqgan: Path | None,
    out: Path,
    force: bool,
) -> None:
    """Import released weights: write them as the pvdm checkpoints `pvdm sample`, `pvdm fvd` and the evaluate
    stage read. Files are loaded with weights_only=True (no pickled code runs)."""
    from pvdm.importing import WeightImportError

    if pvdm_autoencoder is not None and tats_vqgan is not None:
        raise click.UsageError("give one checkpoint per model: --pvdm-autoencoder FILE or --tats-vqgan FILE")
    if pvdm_autoencoder is None and pvdm_diffusion is None and tats_vqgan is None:
        raise click.UsageError(
            "give one checkpoint: --pvdm-autoencoder, --pvdm-diffusion or --tats-vqgan FILE"
        )
    targets = {"autoencoder.pt": pvdm_autoencoder or tats_vqgan, "diffusion.pt": pvdm_diffusion}
    for name, source in targets.items():
        if source is not None and (out / name).exists() and not force:
            raise click.ClickException(
                f"{out / name} exists (a trained model?): pass --force to replace it, or --out DIR"
            )
    if tats_vqgan is not None:
        _import_tats(tats_vqgan, out / "autoencoder.pt")
    source = pvdm_autoencoder
    try:
        if pvdm_autoencoder is not None:
            _import_autoencoder(pvdm_autoencoder, out / "autoencoder.pt")
        source = pvdm_diffusion
        if pvdm_diffusion is not None:
            _import_diffusion(pvdm_diffusion, out, diffusion_heads)
    except WeightImportError as err:
        raise _failure(source, err) from None


def _failure(source: Path | None, err: Exception) -> click.ClickException:
    """One line that names the file (once: some messages start with it already)."""
    message = str(err)
    return click.ClickException(message if message.startswith(f"{source}:") else f"{source}: {message}")


def _import_tats(source: Path, target: Path) -> None:
    from pvdm.families.vqgan3d.importing import describe, import_tats_vqgan
    from pvdm.importing import WeightImportError

    try:
        click.echo("\n".join(describe(import_tats_vqgan(source, target))))
    except WeightImportError as err:
        raise _failure(source, err) from None


def _import_autoencoder(source: Path, target: Path) -> None:
    from pvdm.importing import import_pvdm_autoencoder

    done = import_pvdm_autoencoder(source, target)
    model = done.autoencoder.model
    sizes = {
        k: v for k, v in model.model_dump().items() if k not in ("type", "layout", "activation_checkpointing")
    }
    sizes |= sizes.pop("official")
    read = ", ".join(f"{k} {v}" for k, v in sizes.items() if k != "projection_heads")
    click.echo(f"wrote {done.path}: the official PVDM autoencoder (triplane, layout official)")
    click.echo(
        f"  read from the tensors: resolution {done.data.resolution}, frames {done.data.frames}, {read}"
    )
    for line in done.assumed:
        click.echo(f"  assumed: {line}")


def _import_diffusion(source: Path, out: Path, heads: int) -> None:
    from pvdm.importing import autoencoder_latent, import_pvdm_diffusion

    paired = out / "autoencoder.pt"
    latent = autoencoder_latent(paired) if paired.exists() else None
    done = import_pvdm_diffusion(source, out / "diffusion.pt", latent, heads)
    unet = done.diffusion.denoiser
    read = ", ".join(
        f"{k} {getattr(unet, k)}"
        for k in (
            "model_channels",
            "channel_mult",
            "num_res_blocks",
            "attention_resolutions",
            "use_scale_shift_norm",
        )
    )
    switches = ", ".join(f"{k} {v}" for k, v in unet.official.model_dump().items())
    click.echo(f"wrote {done.path}: the official PVDM denoiser (triplane_unet, layout official)")
    click.echo(f"  read from the tensors: {read}, {switches}, latent channels {done.latent.channels}")
    shape = done.latent
    click.echo(
        f"  latents: {shape.frames} frames, {shape.height} x {shape.width} planes ({shape.length} positions)"
    )
    click.echo(
        "  process: the official one (LDM linear betas 0.0015 -> 0.0195, T 1000, sampler convention official)"
    )
    for line in done.assumed:
        click.echo(f"  assumed: {line}")
