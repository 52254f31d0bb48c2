"""`pvdm synth`, `pvdm preprocess`, `pvdm inspect`: the data commands people run by hand."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pvdm.config import ConfigError, DataConfig, Params, PreprocessConfig, load_params


def _load(params: Path | None) -> Params:
    """params.yaml when given or present in the working directory, else the defaults."""
    if params is None:
        params = Path("params.yaml")
        if not params.is_file():
            return Params()
    try:
        return load_params(params, required=("preprocess",))  # the clip geometry can come from the options
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos", "n_videos", default=32, show_default=True, help="number of videos")
@click.option("--size", default=64, show_default=True, help="height and width in pixels")
@click.option("--frames", default=64, show_default=True, help="frames per video")
@click.option("--fps", default=16.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--classes/--no-classes",
    default=True,
    show_default=True,
    help="two classes by texture, in class folders stripes/ and checkers/ (read with preprocess.labels: folder)",
)
def synth(out_dir: Path, n_videos: int, size: int, frames: int, fps: float, seed: int, classes: bool) -> None:
    """Write the embedded dataset: mp4 videos of striped or checkered objects moving over smooth, panning
    backgrounds."""
    from pvdm.data.synthetic import generate_videos

    paths = generate_videos(out_dir, n_videos, size=size, frames=frames, fps=fps, seed=seed, classes=classes)
    layout = " in class folders stripes/ and checkers/" if classes else ""
    click.echo(f"wrote {len(paths)} videos ({frames} frames, {size}x{size}, {fps:g} fps) to {out_dir}{layout}")


@click.command("preprocess")
@click.option("--raw", "raw_dir", default="data/raw", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", default="data/clips", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--params", type=click.Path(dir_okay=False, path_type=Path), help="default: ./params.yaml if present"
)
@click.option("--resolution", type=int, help="override data.resolution")
@click.option("--frames", type=int, help="override data.frames")
@click.option("--workers", type=click.IntRange(min=0), help="override preprocess.workers (0: all cores)")
@click.option("--progress/--no-progress", default=True, show_default=True)
def preprocess(
    raw_dir: Path,
    out_dir: Path,
    params: Path | None,
    resolution: int | None,
    frames: int | None,
    workers: int | None,
    progress: bool,
) -> None:
    """Cut the videos under RAW into a validated clip store in OUT (incremental: only new videos are decoded)."""
    from pvdm.data.labels import LabelError
    from pvdm.data.preprocess import PreprocessError, run_preprocess

    p = _load(params)
    data = p.data.model_copy(update={k: v for k, v in (("resolution", resolution), ("frames", frames)) if v})
    cfg = p.preprocess if workers is None else p.preprocess.model_copy(update={"workers": workers})
    try:
        report = run_preprocess(
            raw_dir, out_dir, DataConfig.model_validate(data.model_dump()), cfg, progress=progress
        )
    except PreprocessError as err:
        click.echo(err.report.summary(), err=True)
        raise click.ClickException(str(err)) from None
    except (FileNotFoundError, LabelError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(report.summary())


@click.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def inspect(path: Path, as_json: bool) -> None:
    """Describe a clip store (clips, splits, fps, labels, rejected files), a folder of raw videos (what each file
    is) or a checkpoint (.pt: its role, model family, step, size and latents)."""
    from pvdm.data.inspection import inspect_checkpoint, inspect_folder, inspect_store

    if path.is_file() and path.suffix == ".pt":
        info = inspect_checkpoint(path)
    elif (path / "manifest.parquet").is_file():
        info = inspect_store(path)
    else:
        info = inspect_folder(path, PreprocessConfig().extensions)
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False, default=str))
        return
    click.echo(info.pop("text"))
