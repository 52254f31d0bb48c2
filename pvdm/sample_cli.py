"""`pvdm sample`: draw a video of any length from a trained run, by hand."""

from __future__ import annotations

from pathlib import Path

import click

from pvdm.config.sample import SampleConfig


@click.command("sample")
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    default=None,
    help="Frames per video (default: one clip). "
    "Longer videos are generated clip by clip, each conditioned on the previous one (PVDM Algorithm 1); "
    "VIDM draws every frame from frame 0 and the latest one.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output .mp4 or .gif; with --num > 1, files are numbered out_0000.mp4, ...",
)
@click.option("--num", type=click.IntRange(min=1), default=1, show_default=True, help="Videos to generate.")
@click.option(
    "--autoencoder",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("data/models/autoencoder.pt"),
    show_default=True,
)
@click.option(
    "--diffusion",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("data/models/diffusion.pt"),
    show_default=True,
)
@click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), default="ddim", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="Denoising steps.")
@click.option(
    "--eta",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="DDIM noise (0: deterministic).",
)
@click.option(
    "--class",
    "class_",
    default=None,
    metavar="NAME_OR_ID",
    help="For a class-conditional model: the class of every video (a name of the data's class folders, or an "
    "id). Without it, each video's class is drawn uniformly and printed.",
)
@click.option(
    "--guidance",
    type=float,
    default=1.0,
    show_default=True,
    help="Classifier-free guidance weight w on the class (1: plain conditional; larger: more typical of it).",
)
@click.option(
    "--clip-guidance",
    type=float,
    default=1.0,
    show_default=True,
    help="Guidance weight on the previous clip, for long videos (1: plain conditional).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw training weights instead of the EMA weights.")
def sample(
    frames,
    out,
    num,
    autoencoder,
    diffusion,
    sampler,
    steps,
    eta,
    class_,
    guidance,
    clip_guidance,
    seed,
    fps,
    device,
    no_ema,
) -> None:  # noqa: ANN001
    """Generate NUM videos of FRAMES frames from a trained autoencoder + diffusion model (of any family: the
    checkpoints say which) and write them to OUT."""
    import torch

    from pvdm.data.clips import from_model_tensor
    from pvdm.data.video import write_gif, write_video
    from pvdm.device import resolve_device
    from pvdm.sampling import VideoModel, class_id, draw_labels, make_generator, sample_long_videos

    cfg = SampleConfig(sampler=sampler, steps=steps, eta=eta, guidance=guidance, clip_guidance=clip_guidance,
                       seed=seed, fps=fps, batch_size=min(num, 8), use_ema=not no_ema)  # fmt: skip
    dev = resolve_device(device)
    model = VideoModel.load(autoencoder, diffusion, dev, use_ema=cfg.use_ema)
    try:
        labels = (
            torch.full((num,), class_id(model, class_))
            if class_ is not None
            else draw_labels(model, num, seed)
        )
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--class") from None
    frames = frames or model.clip_frames
    click.echo(
        f"sampling {num} video(s) of {frames} frames ({-(-frames // model.clip_frames)} clip(s) each) on {dev}"
    )
    videos = sample_long_videos(model, num, frames, cfg, make_generator(dev, seed), labels)
    write = write_gif if out.suffix.lower() == ".gif" else write_video
    names = model.diffusion.label_names
    for i, v in enumerate(videos):
        path = out if num == 1 else out.with_name(f"{out.stem}_{i:04d}{out.suffix}")
        write(path, from_model_tensor(v), fps)
        label = "" if labels is None else f" (class {names[labels[i]] if names else int(labels[i])})"
        click.echo(f"wrote {path}{label}")
