"""Sampling time of an imported paper-size PVDM on this CPU: the official UNet (layout official, base.yaml's
sizes, 528 M parameters) and the official autoencoder (width 384, 256x256x16), random weights (time does not
depend on them), fp32, batch 1.

    flock /tmp/pvdm-cpu.lock .venv/bin/python -m bench.official_sampling_time --threads 2 --steps 2

Times `--steps` DDIM steps (one network call each, no guidance: the official w = 0) and one decode, and
extrapolates to 100 steps (the official training-time evaluation) and 400 (the released models' setting).
"""

from __future__ import annotations

import argparse
import time

import torch

from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig
from pvdm.families.registry import build_autoencoder, build_denoiser
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="DDIM steps timed")
    p.add_argument("--no-decode", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = DataConfig(resolution=256, frames=16)
    ae = build_autoencoder(AutoencoderConfig(model=TriplaneAEConfig(layout="official")), data).eval()
    spec = ae.latent_spec
    unet = build_denoiser(DiffusionConfig(denoiser=TriplaneUNetConfig(layout="official")), spec).eval()
    print(f"UNet {sum(p.numel() for p in unet.parameters()):,} parameters; latents {spec.shape}")
    z = torch.randn(1, *spec.shape)
    per_step = []
    with torch.no_grad():
        for i in range(args.steps):
            start = time.perf_counter()
            unet(z, torch.tensor([999 - 10 * i]), torch.zeros_like(z))
            per_step.append(time.perf_counter() - start)
            print(f"step {i}: {per_step[-1]:.1f} s")
        decode = 0.0
        if not args.no_decode:
            start = time.perf_counter()
            ae.decode(z.clamp(-1, 1))
            decode = time.perf_counter() - start
            print(f"decode: {decode:.1f} s")
    step = min(per_step)
    for n in (100, 400):
        print(
            f"{n} DDIM steps + decode: {n * step + decode:.0f} s ({(n * step + decode) / 60:.1f} min) per clip"
        )


if __name__ == "__main__":
    main()
