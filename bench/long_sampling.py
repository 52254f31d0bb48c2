"""How sampling time grows with video length, per family: 16, 32, 64 and 128 frames (clip-wise Algorithm 1; VIDM
frame by frame).

    uv run --frozen python -m bench.long_sampling                       # the demo presets of every family
    uv run --frozen python -m bench.long_sampling --preset params/vdm-256.yaml --device cuda --steps 100

The models are built at each preset's size with fresh weights (time does not depend on the weights); each length
is one video, `--steps` DDIM steps per clip, decoded and concatenated. Every later clip is conditioned on the
previous one, so with guidance 1 each clip costs the same: time should grow linearly with the number of clips.
VIDM draws every frame with its own chain (`--steps` per frame), so its time grows linearly with the frames.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pvdm.comparison import family_name
from pvdm.config import load_params
from pvdm.device import resolve_device
from pvdm.diffusion.schedule import make_schedule
from pvdm.families.registry import TrainedDiffusion, build_autoencoder, build_denoiser
from pvdm.sampling import VideoModel, make_generator, sample_long_videos

LENGTHS = (16, 32, 64, 128)


def model_for(preset: Path, device: torch.device) -> VideoModel:
    params = load_params(preset)
    ae = build_autoencoder(params.autoencoder, params.data).to(device).eval()
    denoiser = build_denoiser(params.diffusion, ae.latent_spec).to(device).eval()
    diffusion = TrainedDiffusion(
        denoiser, make_schedule(params.diffusion.process), params.diffusion, ae.latent_spec, label_names=[]
    )
    return VideoModel(ae, diffusion, device)


def seconds_per_length(model: VideoModel, preset: Path, steps: int) -> dict[int, float]:
    cfg = load_params(preset).sample.model_copy(update={"steps": steps, "batch_size": 1})
    out = {}
    for frames in LENGTHS:
        start = time.perf_counter()
        sample_long_videos(model, 1, frames, cfg, make_generator(model.device, 0))
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        out[frames] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", action="append", type=Path, help="params file (repeat); default: demo presets"
    )
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps per clip")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    presets = args.preset or [Path(p) for p in ("params.yaml", "params/vdm.yaml", "params/vqgan-vdm.yaml",
                                                 "params/vidm.yaml")]  # fmt: skip
    print(f"{'family':<12} {'preset':<22} " + " ".join(f"{f:>8}f" for f in LENGTHS) + "   s/clip")
    for preset in presets:
        model = model_for(preset, device)
        times = seconds_per_length(model, preset, args.steps)
        per_clip = times[LENGTHS[-1]] / (LENGTHS[-1] / model.clip_frames)
        name = family_name(load_params(preset))
        print(
            f"{name:<12} {str(preset):<22} "
            + " ".join(f"{times[f]:>8.2f}s" for f in LENGTHS)
            + f"   {per_clip:.2f}"
        )


if __name__ == "__main__":
    main()
