"""VIDM's motion-generator ablation at demo size (the paper's Table 3 and Figure 4): with PosGN and the implicit
motion condition switched off, does the motion collapse?

    make demo                                                    # once: the clip store data/clips
    uv run --frozen python -m bench.vidm_ablation [--params params/vidm.yaml] [--steps 800]
                                                  [--configs full,plain,posgn_only,implicit_only]

Each configuration is the preset with the named switches changed, trained from the same seed for the same steps
through the library loop `pvdm compare` uses (in data/bench/vidm-ablation/<config>/; a rerun reuses finished
training), then sampled with the preset's sampler (the same seed) and measured:

    motion_ratio    mean |frame t+1 - frame t| of the samples over that of the real windows, as `evaluate`
                    measures it (1: moves like the data; 0: a still image, which is what repeating frame 0 gives)
    fvd_16          against the same real windows as `pvdm compare`

Configurations: full (every addition on), plain (PosGN and the implicit condition off: the paper's Ablation 1),
posgn_only (implicit condition off: Ablation 3), implicit_only (PosGN off: Ablation 2). Results are printed and
written to bench/results/vidm_ablation.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from pvdm.comparison import train_family
from pvdm.config import Params, load_params
from pvdm.data.clips import ClipStore, from_model_tensor
from pvdm.device import resolve_device
from pvdm.evaluation import motion, real_set, real_split_indices, sized
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.fvd import compute_fvd, fvd_16
from pvdm.sampling import make_generator, sample_clips

CONFIGS = {
    "full": {},
    "plain": {"posgn": False, "implicit_condition": False},
    "posgn_only": {"implicit_condition": False},
    "implicit_only": {"posgn": False},
}


def configured(params: Params, switches: dict[str, bool], steps: int) -> Params:
    data = params.model_dump(mode="json")
    data["diffusion"]["denoiser"] |= switches
    data["diffusion"]["train"]["steps"] = steps
    return Params.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params/vidm.yaml"))
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--steps", type=int, default=800, help="training steps per configuration")
    parser.add_argument("--configs", default="full,plain", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--out", type=Path, default=Path("data/bench/vidm-ablation"))
    args = parser.parse_args()
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
    base = load_params(args.params)
    if base.diffusion.denoiser.type != "vidm":
        raise SystemExit(f"{args.params}: diffusion.denoiser.type is not vidm")
    device = resolve_device(base.runtime.device)
    cfg = base.evaluate
    store = ClipStore(args.clips)
    split, _ = real_split_indices(store, cfg.real_split)
    data_key = hashlib.sha256((args.clips / "manifest.parquet").read_bytes()).hexdigest()
    extractor = I3DFeatureExtractor(device=device, batch_size=cfg.batch_size)
    rows = {}
    for name in names:
        params = configured(base, CONFIGS[name], args.steps)
        began = time.perf_counter()
        model, _ = train_family(params, args.clips, args.out / name, device)
        trained = time.perf_counter() - began
        n = cfg.fvd_num_fake
        videos = sample_clips(model, n, params.sample, make_generator(device, params.sample.seed))
        fakes = [from_model_tensor(v) for v in videos]
        reals = real_set(store, split, args.out / "no-labels", cfg.window_seed)
        protocol = sized(fvd_16(cfg.fvd_num_real, n, split), reals.available(16, cfg.fvd_num_real), n)
        fvd = compute_fvd(
            reals.windows(16, protocol.n_real), iter(fakes), protocol, extractor, reals.key(data_key)
        )
        fake_motion = motion(fakes, limit=n)
        real_motion = motion(reals.windows(16, protocol.n_real), limit=n)  # as `evaluate` measures it
        rows[name] = {"switches": CONFIGS[name], "steps": args.steps, "motion_fake": fake_motion,
                      "motion_real": real_motion, "motion_ratio": fake_motion / real_motion, "fvd_16": fvd.fvd,
                      "seconds": time.perf_counter() - began, "train_seconds": trained}  # fmt: skip
        print(name, json.dumps(rows[name]), flush=True)
    results = Path("bench/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "vidm_ablation.json").write_text(json.dumps(rows, indent=2))
    print(f"{'config':>14} {'motion ratio':>13} {'fvd_16':>8}")
    for name, r in rows.items():
        print(f"{name:>14} {r['motion_ratio']:>13.3f} {r['fvd_16']:>8.1f}")


if __name__ == "__main__":
    main()
