"""Where a training step's time goes, at a preset's size: data loading, forward, perceptual loss, backward,
optimizer (and EMA) for the autoencoder and the diffusion model, on this machine's CPU (or a GPU).

    uv run --frozen python -m bench.train_profile                     # params.yaml, clips from data/clips
    uv run --frozen python -m bench.train_profile --preset params/pvdm-s.yaml --device cuda --clips none

With `--clips none` the batches are random tensors (loading is then not measured). Each phase is timed over
`--steps` steps after 2 warm-up steps; the table gives milliseconds per step and the share of the step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from pvdm.config import Params, load_params
from pvdm.data.clips import ClipDataset
from pvdm.device import autocast, resolve_device
from pvdm.diffusion.objective import choose_conditions, eps_loss
from pvdm.families.registry import build_autoencoder, build_denoiser
from pvdm.metrics.lpips import load_lpips
from pvdm.training.autoencoder_loss import pick_frames, random_frame_index
from pvdm.training.schedule import global_batch_indices


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device, self.ms = device, defaultdict(list)

    def phase(self, name: str, fn: Callable[[], object]) -> object:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.ms[name].append((time.perf_counter() - start) * 1000)
        return out


def batches(params: Params, clips: str, batch: int, device: torch.device, timer: Timer):
    shape = (batch, 3, params.data.frames, params.data.resolution, params.data.resolution)
    dataset = None if clips == "none" else ClipDataset(clips, "train")
    for step in range(10**9):
        if dataset is None:
            yield torch.rand(shape, device=device) * 2 - 1
            continue
        idx = global_batch_indices(len(dataset), batch, step, 0)
        yield timer.phase("load batch", lambda idx=idx: torch.stack([dataset[i] for i in idx]).to(device))


def profile_autoencoder(
    params: Params, clips: str, device: torch.device, steps: int
) -> dict[str, list[float]]:
    cfg, timer = params.autoencoder, Timer(device)
    model = build_autoencoder(cfg, params.data).to(device).train()
    if not model.trainable:
        return {}
    lpips = load_lpips(cfg.loss.lpips_net).to(device) if cfg.loss.lpips_weight > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas))
    g = torch.Generator().manual_seed(0)
    source = batches(params, clips, cfg.train.batch_size, device, timer)
    for step in range(steps + 2):
        x = next(source)
        with autocast(device, params.runtime.precision):
            rec = timer.phase("autoencoder forward", lambda x=x: model(x))
            loss = (rec - x).abs().mean()
            if lpips is not None:
                idx = random_frame_index(x.shape[0], x.shape[2], cfg.loss.lpips_frames, g).to(device)
                a, b = pick_frames(rec, idx), pick_frames(x, idx)
                lp = timer.phase("LPIPS forward", lambda a=a, b=b: lpips(a, b).mean())
                loss = loss + cfg.loss.lpips_weight * lp
        opt.zero_grad(set_to_none=True)
        timer.phase("backward", loss.backward)
        timer.phase("optimizer", opt.step)
        if step == 1:
            timer.ms.clear()
    return timer.ms


def profile_diffusion(params: Params, device: torch.device, steps: int) -> dict[str, list[float]]:
    from pvdm.diffusion.ema import EMA
    from pvdm.diffusion.schedule import make_schedule

    cfg, timer = params.diffusion, Timer(device)
    spec = build_autoencoder(params.autoencoder, params.data).latent_spec
    model = build_denoiser(cfg, spec).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    ema, schedule = EMA(model, cfg.train.ema_decay), make_schedule(cfg.process)
    g = torch.Generator().manual_seed(0)
    for step in range(steps + 2):
        z = torch.rand(cfg.train.batch_size, *spec.shape, device=device) * 2 - 1
        cond, _ = choose_conditions(z, None, z.shape[0], cfg.train.cond_prob, g)
        with autocast(device, params.runtime.precision):
            loss = timer.phase(
                "denoiser forward + loss", lambda z=z, c=cond: eps_loss(model, z, c, schedule, g)
            )
        opt.zero_grad(set_to_none=True)
        timer.phase("backward", loss.backward)
        timer.phase("optimizer", opt.step)
        timer.phase("EMA update", lambda: ema.update(model))
        if step == 1:
            timer.ms.clear()
    return timer.ms


def table(title: str, ms: dict[str, list[float]]) -> str:
    if not ms:
        return f"{title}: nothing to train\n"
    med = {k: statistics.median(v) for k, v in ms.items()}
    total = sum(med.values())
    lines = [f"{title}: {total:.0f} ms per step", f"  {'phase':<26} {'ms':>8} {'share':>6}"]
    lines += [f"  {k:<26} {v:>8.1f} {v / total:>6.0%}" for k, v in med.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", type=Path, default=Path("params.yaml"))
    parser.add_argument("--clips", default="data/clips", help="a clip store, or 'none' for random batches")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    params, device = load_params(args.preset), resolve_device(args.device)
    print(f"{args.preset} on {device}, {torch.get_num_threads()} threads\n")
    print(table("autoencoder", profile_autoencoder(params, args.clips, device, args.steps)))
    print(table("diffusion", profile_diffusion(params, device, args.steps)))


if __name__ == "__main__":
    main()
