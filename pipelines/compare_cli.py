"""`pvdm compare`: the command line of pipelines/compare.py (imported when the command runs, so `pvdm --help`
stays fast)."""

from __future__ import annotations

import logging
from pathlib import Path

import click


def default_presets() -> list[str]:
    """Every registered family's demo preset, PVDM first (pvdm.families.registry)."""
    from pvdm.families.registry import families

    return [f.presets["demo"] for f in families() if "demo" in f.presets]


@click.command("compare")
@click.option(
    "--preset",
    "presets",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A params file per family (repeat). The first sets the clips, sampler, steps and FVD protocol for all. "
    "Default: every registered family's demo preset (params.yaml, params/vdm.yaml, ...).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/compare"),
              show_default=True, help="Where the shared clips, each family's trained models and the table go.")  # fmt: skip
@click.option("--project", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The project folder (its data/raw holds the videos).")  # fmt: skip
def compare(presets: tuple[Path, ...], out: Path, project: Path) -> None:
    """Train, sample and score every family on the same data under one protocol; write a table (markdown and
    JSON) and one MLflow comparison (a parent run, a child run per family)."""
    from pipelines.compare import compare_families  # MLflow, torch and I3D: only when the command runs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    chosen = [Path(p) for p in presets] or [project / p for p in default_presets()]
    rows = compare_families(chosen, project.resolve(), out)
    click.echo((out / "compare.md").read_text())
    failed = [r["family"] for r in rows if "error" in r]
    if failed:
        click.echo(f"N/A rows: {', '.join(failed)} (see the log above)", err=True)
