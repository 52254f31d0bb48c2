"""Attention layout of the triplane denoiser: pvdm's compact layout against the official PVDM code's, on the demo.

    make demo                                                # once: the clips and the trained autoencoder
    uv run --frozen python -m bench.attention_layout [--params params.yaml]

The official code attends jointly across the three planes after every block at every level, and within each plane
at the attention resolutions; pvdm's default (`diffusion.denoiser.attention_layout: compact`) closes only the blocks
at the attention resolutions with one joint attention (its keys include the plane's own tokens).

Both layouts denoise the same latents. The demo's trained autoencoder (data/models/autoencoder.pt) is reused, and
each layout's diffusion model trains for the preset's steps from the same seed, through the library loop that
`pvdm compare` uses, in data/bench/attention-layout/<layout>/ (a rerun reuses finished training). Each is then
measured like a family in `pvdm compare`: denoiser parameters, train s/step, sample s/video and fvd_16 (same real
windows, same protocol). The results are printed and written to bench/results/attention_layout.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from pvdm.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, step_checkpoint_path
from pvdm.comparison import run_family
from pvdm.config import Params, load_params
from pvdm.device import resolve_device
from pvdm.metrics.features import I3DFeatureExtractor

LAYOUTS = ("compact", "official")
SHOWN = ("denoiser_params", "diffusion_step_s", "sample_s_per_video", "fvd_16", "n_real", "n_fake")


def with_layout(params: Params, layout: str, autoencoder_steps: int) -> Params:
    data = params.model_dump(mode="json")
    data["diffusion"]["denoiser"]["attention_layout"] = layout
    data["autoencoder"]["train"]["steps"] = autoencoder_steps  # the reused checkpoint is complete
    return Params.model_validate(data)


def seed_autoencoder(workdir: Path, payload: dict) -> None:
    """Put the demo's trained autoencoder where the comparison loop looks for it, as a finished run."""
    folder = workdir / "autoencoder"
    if latest_checkpoint(folder) is None:
        save_checkpoint(step_checkpoint_path(folder, int(payload["step"])), payload)
        (folder / "timing.json").write_text(json.dumps({"step_s": 0.0}))  # not trained here


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--autoencoder", type=Path, default=Path("data/models/autoencoder.pt"))
    parser.add_argument("--out", type=Path, default=Path("data/bench/attention-layout"))
    args = parser.parse_args()
    params = load_params(args.params)
    if params.diffusion.denoiser.type != "triplane_unet":
        raise SystemExit(f"{args.params}: diffusion.denoiser.type is not triplane_unet")
    payload = load_checkpoint(args.autoencoder)
    data_key = hashlib.sha256((args.clips / "manifest.parquet").read_bytes()).hexdigest()
    extractor = I3DFeatureExtractor(
        device=resolve_device(params.evaluate.device), batch_size=params.evaluate.batch_size
    )
    rows = {}
    for layout in LAYOUTS:
        workdir = args.out / layout
        seed_autoencoder(workdir, payload)
        metrics = run_family(
            with_layout(params, layout, int(payload["step"])), args.clips, workdir, extractor, data_key
        )
        rows[layout] = {k: metrics[k] for k in SHOWN}
        print(layout, json.dumps(rows[layout]), flush=True)
    results = Path("bench/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "attention_layout.json").write_text(json.dumps(rows, indent=2))
    print(f"{'layout':>9} {'params':>9} {'s/step':>7} {'s/video':>8} {'fvd_16':>8}")
    for layout, r in rows.items():
        print(
            f"{layout:>9} {r['denoiser_params']:>9.0f} {r['diffusion_step_s']:>7.3f} "
            f"{r['sample_s_per_video']:>8.2f} {r['fvd_16']:>8.1f}"
        )


if __name__ == "__main__":
    main()
