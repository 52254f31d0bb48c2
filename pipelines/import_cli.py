"""`pvdm import` as the installed `pvdm` command has it: pvdm's command (pvdm/import_cli.py, same options, same
checkpoints) plus `--register`, which registers what it wrote in MLflow (pipelines/imported.py). pvdm never
imports MLflow, so the option lives here; pipelines/cli.py puts this command in place of the library's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipelines.paths import current_root
from pvdm.import_cli import import_ as library_import

REGISTER = click.Option(
    ["--register"],
    is_flag=True,
    help="Also register the written checkpoints in MLflow as the training stages register theirs "
    "(pvdm-autoencoder, pvdm-diffusion; the experiment and store of the pipeline: MLFLOW_TRACKING_URI, else "
    "the project's mlflow.db), tagged with the source's file name and SHA-256.",
)


def written(options: dict[str, Any]) -> list[Path]:
    """The checkpoints the library command wrote for these options."""
    out: Path = options["out"]
    autoencoder = options["pvdm_autoencoder"] or options["tats_vqgan"]
    return [out / "autoencoder.pt"] * bool(autoencoder) + [out / "diffusion.pt"] * bool(
        options["pvdm_diffusion"]
    )


def run_import(register: bool, **options: Any) -> None:
    library_import.callback(**options)
    if not register:
        return
    from mlflow.exceptions import MlflowException

    from pipelines.imported import register_imported
    from pvdm.redact import redact

    for path in written(options):
        try:
            done = register_imported(path, current_root())
        except MlflowException as err:  # a store that cannot be reached: one line, credentials masked
            raise click.ClickException(f"registering {path}: {redact(str(err))}") from None
        click.echo(f"registered {done.label} (MLflow run {done.run_id}): {path} from {done.source}")


import_ = click.Command(
    "import",
    params=[*library_import.params, REGISTER],
    callback=run_import,
    help=library_import.help,
    short_help=library_import.short_help,
)
