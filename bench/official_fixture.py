"""A small fixture of the official PVDM autoencoder: its weights, a fixed input and its outputs, for pvdm's import test.

    python -m bench.official_fixture --official /path/to/PVDM --out tests/fixtures/official/pvdm_ae_small.pt
    python -m bench.official_fixture --official /path/to/PVDM --out tests/fixtures/official/pvdm_ae_8frames.pt \
        --resolution 16 --frames 8 --width 24 --encoder-depth 1 --decoder-depth 2 --heads 1 --head-dim 10 \
        --projection-depth 1 --projection-mlp 32 --latent-channels 3 --seed 1

`--official` is a local checkout of github.com/sihyun-yu/PVDM: it is put on sys.path while this runs and nothing of
it is copied into this project. Its `ViTAutoencoder` (models/autoencoder/autoencoder_vit.py) hard-codes the paper's
sizes (TimeSformer depth 8, 8 heads of 64, projection transformers of depth 4 with an MLP of 512); to keep the
fixture under a megabyte this script hands the official TimeSformer and Transformer classes smaller depths, heads
and MLP width by substituting the names the official module looks them up by, for this process only. The classes
and the ViTAutoencoder's own code run unchanged. Projection heads stay the official 4 with `channels // 8` per head
(a checkpoint cannot say how its projection width splits into heads; pvdm assumes the official split).

Every parameter is nudged by seeded noise after the official initialisation (LayerNorms are ones and zeros and
biases zeros otherwise, which would hide a swapped or missing tensor). The fixture holds: `state_dict` (the
official module's, as its trainer saves it), `input` (B, 3, T, H, W) in [-1, 1] (float16; the official ran on
`input.float()`, so the values are exact), `latent` (the official
`extract(input)`: (B, C, L)), `reconstruction` (B, 3, T, H, W): the official `decode_from_sample(latent)` at 16
frames; at other frame counts `forward(input)` (encode + decode), because `decode_from_sample` hard-codes 16 frames
and `forward` does not), `reconstruction_from` (which one) and `config` (the sizes used).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from einops import rearrange


def official_modules(checkout: Path):  # noqa: ANN201 (the official module)
    if not (checkout / "models" / "autoencoder" / "autoencoder_vit.py").is_file():
        sys.exit(f"{checkout}: not a checkout of sihyun-yu/PVDM (no models/autoencoder/autoencoder_vit.py)")
    sys.path.insert(0, str(checkout))
    import models.autoencoder.autoencoder_vit as vit

    return vit


def shrink(vit, args: argparse.Namespace) -> None:  # noqa: ANN001
    """Hand the official classes smaller sizes than ViTAutoencoder hard-codes (this process only)."""
    encoder_cls, decoder_cls, transformer_cls = (
        vit.TimeSformerEncoder,
        vit.TimeSformerDecoder,
        vit.Transformer,
    )
    sizes = {"heads": args.heads, "dim_head": args.head_dim}

    def encoder(**kwargs):  # noqa: ANN003, ANN202
        return encoder_cls(**{**kwargs, "depth": args.encoder_depth, **sizes})

    def decoder(**kwargs):  # noqa: ANN003, ANN202
        return decoder_cls(**{**kwargs, "depth": args.decoder_depth, **sizes})

    def transformer(dim, depth, heads, dim_head, mlp_dim):  # noqa: ANN001, ANN202
        return transformer_cls(dim, args.projection_depth, heads, dim_head, args.projection_mlp)

    vit.TimeSformerEncoder, vit.TimeSformerDecoder, vit.Transformer = encoder, decoder, transformer


def build(vit, args: argparse.Namespace) -> torch.nn.Module:  # noqa: ANN001
    ddconfig = {"splits": 1, "timesteps": args.frames, "resolution": args.resolution, "channels": args.width}
    torch.manual_seed(args.seed)
    model = vit.ViTAutoencoder(args.latent_channels, ddconfig)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
            p.copy_(
                p.half().float()
            )  # values a float16 holds: the fixture stores the weights in half the bytes
    return model.eval()


def main() -> None:
    if "--unet" in sys.argv:
        sys.argv.remove("--unet")
        return unet_main()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", type=Path, required=True, help="local checkout of sihyun-yu/PVDM")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resolution", type=int, default=24, help="patch 8 (the official's at any size but 128)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--width", type=int, default=32, help="ddconfig channels")
    p.add_argument("--latent-channels", type=int, default=4, help="embed_dim")
    p.add_argument("--encoder-depth", type=int, default=2)
    p.add_argument("--decoder-depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=2, help="TimeSformer heads")
    p.add_argument("--head-dim", type=int, default=12, help="TimeSformer width per head")
    p.add_argument("--projection-depth", type=int, default=2)
    p.add_argument("--projection-mlp", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--official-sizes",
        action="store_true",
        help="keep the depths, heads and MLP widths ViTAutoencoder hard-codes (the released checkpoints' sizes; "
        "the file is large: a check outside the tests, see docs/official-weights.md); the size flags above but "
        "--resolution, --frames, --width and --latent-channels are then ignored",
    )
    args = p.parse_args()

    vit = official_modules(args.official.resolve())
    if not args.official_sizes:
        shrink(vit, args)
    model = build(vit, args)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand(args.batch, 3, args.frames, args.resolution, args.resolution, generator=g) * 2 - 1
    x = x.half().float()  # values a float16 holds exactly: the fixture stores the input in half the bytes
    with torch.no_grad():
        latent = model.extract(x)
        if args.frames == 16:
            recon, source = model.decode_from_sample(latent), "decode_from_sample(extract(input))"
        else:
            recon, source = model(x)[0], "forward(input)"
    recon = rearrange(recon, "(b t) c h w -> b c t h w", b=args.batch)  # as the official trainer reads it
    config = {k: v for k, v in vars(args).items() if k not in ("official", "out")}
    if args.official_sizes:  # what ViTAutoencoder hard-codes
        config |= {"encoder_depth": 8, "decoder_depth": 8, "heads": 8, "head_dim": 64}
        config |= {"projection_depth": 4, "projection_mlp": 512}
    fixture = {
        "state_dict": _half(model.state_dict()),
        "input": x.half(),
        "latent": latent,
        "reconstruction": recon,
        "reconstruction_from": source,
        "config": config,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    n = sum(v.numel() for v in fixture["state_dict"].values())
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB, {n} weights): latent {tuple(latent.shape)}, "
    )
    print(f"reconstruction {tuple(recon.shape)} from {source}; config {config}")


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float tensors whose values float16 holds exactly (the rounded weights, zero buffers) as float16; the rest
    (e.g. rotary frequency buffers the official code computed) as they are."""

    def exact(v: torch.Tensor) -> bool:
        return v.is_floating_point() and torch.equal(v.half().float(), v.float())

    return {k: v.detach().half() if exact(v) else v.detach().clone() for k, v in state.items()}


# --- the official UNet and its DDIM sampler ------------------------------------------------------------------


def unet_main() -> None:
    """`--unet`: the official UNetModel (models/ddpm/unet.py) in the official DiffusionWrapper, at a small size, its
    output on fixed (x_t, t, condition), and short DDIM trajectories of the official
    DDPM sampler (losses/ddpm.py, as evals/eval.py builds it: w 0, eta 1) from seeded noise."""
    p = argparse.ArgumentParser(description="fixture of the official PVDM UNet and DDIM sampler")
    p.add_argument("--official", type=Path, required=True, help="local checkout of sihyun-yu/PVDM")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--model-channels", type=int, default=32, help="a multiple of 32 (the official GroupNorm32)"
    )
    p.add_argument("--channel-mult", type=int, nargs="+", default=[1, 1])
    p.add_argument("--num-res-blocks", type=int, default=1)
    p.add_argument("--attention-resolutions", type=int, nargs="+", default=[1, 2])
    p.add_argument("--num-heads", type=int, default=8, help="the official 8 (pvdm import assumes it)")
    p.add_argument("--in-channels", type=int, default=4)
    p.add_argument("--no-scale-shift", action="store_true")
    p.add_argument("--no-resblock-updown", action="store_true")
    p.add_argument("--steps", type=int, default=4, help="DDIM steps of the trajectories")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--full-precision", action="store_true", help="keep fp32 weights (a check outside the tests)"
    )
    args = p.parse_args()
    checkout = args.official.resolve()
    if not (checkout / "models" / "ddpm" / "unet.py").is_file():
        sys.exit(f"{checkout}: not a checkout of sihyun-yu/PVDM (no models/ddpm/unet.py)")
    sys.path.insert(0, str(checkout))
    from losses.ddpm import DDPM
    from models.ddpm.unet import DiffusionWrapper, UNetModel

    config = {k: v for k, v in vars(args).items() if k not in ("official", "out")}
    torch.manual_seed(args.seed)
    unet = UNetModel(
        image_size=32, in_channels=args.in_channels, out_channels=args.in_channels,
        model_channels=args.model_channels, attention_resolutions=args.attention_resolutions,
        num_res_blocks=args.num_res_blocks, channel_mult=args.channel_mult, num_heads=args.num_heads,
        use_scale_shift_norm=not args.no_scale_shift, resblock_updown=not args.no_resblock_updown, cond_model=True,
    )  # fmt: skip
    model = DiffusionWrapper(unet).eval()  # what the official trainer saves: keys `diffusion_model.*`
    with torch.no_grad():
        for (
            param
        ) in model.parameters():  # zero-initialised outputs and unit norms would hide a swapped tensor
            param.add_(0.05 * torch.randn_like(param))
            if not args.full_precision:
                param.copy_(param.half().float())
    g = torch.Generator().manual_seed(args.seed + 1)
    shape = (args.batch, args.in_channels, 2048)  # the official forward hard-codes 32 x 32 and 16 x 32 planes
    x_t = (torch.randn(shape, generator=g) * 1.5).half().float()
    cond = (torch.rand(shape, generator=g) * 2 - 1).half().float()
    t = torch.tensor([999, 137][: args.batch] + [500] * max(args.batch - 2, 0))
    with torch.no_grad():
        eps_cond = model(x_t, cond, t)  # the null condition (None) is checked by the ddim_null trajectory
        ddpm = DDPM(
            model, channels=args.in_channels, sampling_timesteps=args.steps, w=0.0
        )  # as evals/eval.py
        torch.manual_seed(args.seed + 2)
        ddim_null = ddpm.sample(batch_size=args.batch)
        torch.manual_seed(args.seed + 3)
        ddim_cond = ddpm.sample(batch_size=args.batch, cond=cond)
    state = model.state_dict()
    fixture = {
        "state_dict": {k: v.clone() for k, v in state.items()} if args.full_precision else _half(state),
        "x_t": x_t.half(), "cond": cond.half(), "t": t, "eps_cond": eps_cond,
        "ddim_seeds": [args.seed + 2, args.seed + 3], "ddim_null": ddim_null, "ddim_cond": ddim_cond,
        "config": config,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    n = sum(v.numel() for v in state.values())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB, {n} weights); config {config}")


if __name__ == "__main__":
    main()
