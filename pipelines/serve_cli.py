"""`pvdm serve`: serve the project's Prefect deployments (pvdm/full, pvdm-retrain/scheduled).

Orchestration, so it lives in pipelines/ (the `pvdm` console command, pipelines.cli, adds it to the library's
commands). It imports no Prefect itself: it starts `python -m pipelines.deployments serve` (the same as
`make serve`) in the project folder and waits for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click


@click.command("serve")
@click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder (dvc.yaml, params.yaml).",
)
def serve(project: Path) -> None:
    """Serve the Prefect deployments pvdm/full and pvdm-retrain/scheduled until Ctrl-C (needs PREFECT_API_URL)."""
    if not os.environ.get("PREFECT_API_URL"):
        click.echo(
            "note: PREFECT_API_URL is not set; Prefect's default profile decides which server is used",
            err=True,
        )
    argv = [sys.executable, "-m", "pipelines.deployments", "serve", "--project", str(project.resolve())]
    try:
        code = subprocess.call(argv, cwd=project)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
