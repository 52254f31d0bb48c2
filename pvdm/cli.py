"""`pvdm`: the command line for what people do by hand (sample, FVD between folders, preprocess, inspect, import
released weights)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pvdm")
def main() -> None:
    """Projected latent video diffusion (PVDM): train, sample and evaluate video diffusion models.

    The full pipeline runs with `dvc repro` (or `make demo`); these commands are the pieces people run by hand.
    """
    # The installed `pvdm` command is pipelines.cli:main: these commands plus the orchestration ones (serve).


# Subcommands are registered below, one line each, from the modules that implement them.
from pvdm.data.cli import inspect, preprocess, synth  # noqa: E402

main.add_command(synth)
main.add_command(preprocess)
main.add_command(inspect)
from pvdm.sample_cli import sample  # noqa: E402

main.add_command(sample)
from pvdm.metrics.cli import fvd  # noqa: E402

main.add_command(fvd)
from pvdm.import_cli import import_  # noqa: E402

main.add_command(import_)
