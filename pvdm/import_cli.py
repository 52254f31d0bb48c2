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
    "are read from the tensors.",
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
    help="Folder the pvdm checkpoint is written to, as autoencoder.pt.",
)
@click.option("--force", is_flag=True, help="Replace an existing autoencoder.pt in --out.")
def import_(pvdm_autoencoder: Path | None, tats_vqgan: Path | None, out: Path, force: bool) -> None:
    """Import released weights: write them as the pvdm checkpoints `pvdm sample`, `pvdm fvd` and the evaluate
    stage read. Files are loaded with weights_only=True (no pickled code runs)."""
    from pvdm.importing import WeightImportError, import_pvdm_autoencoder

    if (pvdm_autoencoder is None) == (tats_vqgan is None):
        raise click.UsageError("give one checkpoint: --pvdm-autoencoder FILE or --tats-vqgan FILE")
    target = out / "autoencoder.pt"
    if target.exists() and not force:
        raise click.ClickException(
            f"{target} exists (a trained model?): pass --force to replace it, or --out DIR"
        )
    if tats_vqgan is not None:
        from pvdm.families.vqgan3d.importing import describe, import_tats_vqgan

        try:
            click.echo("\n".join(describe(import_tats_vqgan(tats_vqgan, target))))
        except WeightImportError as err:
            raise click.ClickException(f"{tats_vqgan}: {err}") from None
        return
    try:
        done = import_pvdm_autoencoder(pvdm_autoencoder, target)
    except WeightImportError as err:
        raise click.ClickException(f"{pvdm_autoencoder}: {err}") from None
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
