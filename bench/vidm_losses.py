"""VIDM's two generators at demo size on the embedded dataset: do both losses fall on 2 CPU cores?

    make demo                                    # once: the clip store data/clips
    uv run --frozen python -m bench.vidm_losses [--steps 300] [--channels 32] [--no-posgn --no-implicit]

Trains the content generator (frame UNet with the truncation constant) and the motion generator (PosGN, SpyNet
condition, feature residual; switches as flags) jointly: the vidm family's own objective through the shared
`diffusion_train_step`, robustness penalty on, on batches of train-split clips. Prints both networks' parameters, and both losses averaged over
every 50 steps with the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pvdm.config.diffusion import DiffusionTrainConfig
from pvdm.data.clips import ClipDataset
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.schedule import NoiseSchedule, linear_betas
from pvdm.families.identity.build import IdentityAutoencoder
from pvdm.families.vidm.config import VIDMConfig
from pvdm.families.vidm.denoiser import VIDMDenoiser
from pvdm.training.diffusion_step import diffusion_train_step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--no-posgn", action="store_true")
    parser.add_argument("--no-implicit", action="store_true")
    parser.add_argument("--no-residual", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = ClipDataset(args.clips, "train")
    frames, size = data[0].shape[1], data[0].shape[-1]  # clips are (3, T, H, W)
    cfg = VIDMConfig(model_channels=args.channels, channel_mult=[1, 2, 2], num_res_blocks=1,
                     attention_resolutions=[4], num_heads=4, norm_groups=8, implicit_condition=not args.no_implicit,
                     posgn=not args.no_posgn, feature_residual=not args.no_residual,
                     flow={"levels": 3, "widths": [16, 32, 16], "kernel": 5})  # fmt: skip
    model = VIDMDenoiser(cfg, IdentityAutoencoder(frames, size).latent_spec)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"content generator {count(model.content):,} parameters, motion generator {count(model.motion):,}",
          flush=True)  # fmt: skip
    schedule = NoiseSchedule.from_betas(linear_betas(1000, 1e-4, 0.02))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    ema, train = EMA(model, 0.999), DiffusionTrainConfig(grad_clip=1.0)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True, generator=generator)
    step, window, start = 0, [], time.perf_counter()
    while step < args.steps:
        for clips in loader:
            window.append(
                diffusion_train_step(
                    model,
                    ema,
                    optimizer,
                    clips,
                    None,
                    schedule,
                    train,
                    device=torch.device("cpu"),
                    precision="fp32",
                    generator=generator,
                )
            )
            step += 1
            if step % 50 == 0 or step == args.steps:
                mean = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
                print(f"step {step:>5}  content {mean['content_loss']:.3f}  motion {mean['motion_loss']:.3f}  "
                      f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
                window = []
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
