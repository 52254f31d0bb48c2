"""`pvdm fvd REAL FAKE`: FVD between two folders of videos, the way pytorch-fid compares two image folders."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("fvd")
@click.argument("real", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("fake", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--frames", default=16, show_default=True, help="consecutive frames per clip (16: fvd_16)")
@click.option("--num", default=2048, show_default=True, help="clips per side (StyleGAN-V protocol: 2048)")
@click.option("--num-real", type=int, help="real clips, when different from --num")
@click.option("--num-fake", type=int, help="generated clips, when different from --num")
@click.option("--batch-size", default=8, show_default=True, help="clips per I3D forward pass")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option(
    "--seed", default=0, show_default=True, help="seed of the real-window rule (which window of each video)"
)
@click.option("--cache/--no-cache", default=True, show_default=True, help="reuse cached statistics of REAL")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="also write the record here"
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def fvd(
    real: Path,
    fake: Path,
    frames: int,
    num: int,
    num_real: int | None,
    num_fake: int | None,
    batch_size: int,
    device: str,
    seed: int,
    cache: bool,
    json_out: Path | None,
    progress: bool,
) -> None:
    """FVD between the videos under REAL and those under FAKE (I3D Kinetics-400 logits, frames resized to 224).

    Real clips follow the StyleGAN-V / PVDM rule: REAL's videos shuffled with --seed, one random window of FRAMES
    consecutive frames from each, more windows per video (spread evenly) only when there are fewer videos than
    clips asked for. Generated clips are the first FRAMES frames of every video under FAKE (then the next FRAMES,
    round-robin, if there are fewer videos than clips). Prints the FVD and the protocol record (counts, frames,
    resolution, window rule and seed, detector and its SHA-256) as JSON.
    """
    from pvdm.device import resolve_device
    from pvdm.metrics.features import I3DFeatureExtractor
    from pvdm.metrics.folders import folder_clips, folder_hash, folder_windows
    from pvdm.metrics.fvd import FVDProtocol, StatsCache, compute_fvd
    from pvdm.metrics.windows import WINDOW_RULE

    name = "fvd_16" if frames == 16 else f"fvd_{frames}"
    protocol = FVDProtocol(name, frames, num_real or num, num_fake or num, real_split=str(real))
    try:
        extractor = I3DFeatureExtractor(resolve_device(device), batch_size=batch_size, progress=progress)
        result = compute_fvd(
            folder_windows(real, frames, protocol.n_real, seed),
            folder_clips(fake, frames, protocol.n_fake),
            protocol,
            extractor,
            real_data_key=f"{folder_hash(real)}:{WINDOW_RULE}:{seed}" if cache else None,
            cache=StatsCache() if cache else None,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    record = result.as_dict() | {"window_rule": WINDOW_RULE, "window_seed": seed,
                                 "real_stats_cached": result.real_stats_cached, "fake": str(fake)}  # fmt: skip
    click.echo(f"FVD: {result.fvd:.4f}")
    click.echo(json.dumps(record, indent=2))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(record, indent=2) + "\n")
