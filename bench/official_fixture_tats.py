"""A small fixture of TATS's 3D-VQGAN: a Lightning-style checkpoint of the official module and its outputs on a fixed
input, for pvdm's `--tats-vqgan` import test (tests/pvdm/test_tats_import.py).

    python -m bench.official_fixture_tats --official /path/to/TATS --out tests/fixtures/official/tats_vqgan_small
    python -m bench.official_fixture_tats --official /path/to/TATS --out /tmp/tats_other --n-hiddens 16 \
        --downsample 4 2 2 --norm group --padding constant --embedding-dim 6 --n-codes 64 --frames 8 --seed 3

`--official` is a local checkout of github.com/songweige/TATS: it is put on sys.path while this runs and nothing of
it is copied into this project. The official `tats.tats_vqgan.VQGAN(args)` is built and run unchanged. What this
process substitutes, and why:
- `pytorch_lightning` (TATS pins 1.5.4, which does not run on this project's torch) and `skvideo` (imported by
  tats/utils.py for video writing, unused here) are stand-in modules: a LightningModule that is an nn.Module whose
  `save_hyperparameters()` records `{"args": args}` (Lightning's hparams of `__init__(self, args)`).
- the `tats` package's `__init__` (it imports the data loaders and the transformer) is skipped: `tats` is
  registered as a bare package so only tats_vqgan.py and what it imports run.
- `LPIPS` (its constructor downloads VGG16 weights) is a small module with LPIPS's key names: the import drops
  `perceptual_model.*` whatever it holds, and the test checks that it does.

After the official initialisation every parameter and buffer is nudged with seeded noise (norm weights are ones,
biases and running means zeros otherwise, which would hide a swapped tensor); then the official codebook runs once
in training mode on the encoder's features of another random batch (its own initialisation from data and one EMA
update), so the codes spread over the features. Written: `<out>.ckpt`, a checkpoint shaped as Lightning 1.5 saves one (`state_dict` with the
discriminators and the perceptual network, `hyper_parameters: {"args": argparse.Namespace}`, unstepped Adam
`optimizer_states`, epoch, global_step, a ModelCheckpoint callback state); and `<out>.pt` with `input` (B, 3, T, H,
W) in TATS's [-0.5, 0.5] (float16: the official ran on `input.float()`, so the values are exact), the official
`codes` and `embeddings` (`encode(input, include_embeddings=True)`), `reconstruction` (`forward`'s: decoder of
the straight-through embeddings), `decoded` (`decode(codes)`) and `config`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import torch
from torch import nn


def _stand_ins() -> None:
    """The modules TATS imports that this process does not run (see the module docstring)."""
    lightning = types.ModuleType("pytorch_lightning")

    class LightningModule(nn.Module):
        def save_hyperparameters(self) -> None:
            self.hparams = {"args": self.args}

    lightning.LightningModule = LightningModule
    skvideo = types.ModuleType("skvideo")
    skvideo.io = types.ModuleType("skvideo.io")
    sys.modules |= {"pytorch_lightning": lightning, "skvideo": skvideo, "skvideo.io": skvideo.io}


class SmallLPIPS(nn.Module):
    """LPIPS's key names (scaling_layer, net.sliceN, linN.model.1) at a few hundred weights: never run."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
        )
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.net = nn.Module()
        self.net.slice1 = nn.Sequential(nn.Conv2d(3, 4, 3))
        self.lin0 = nn.Module()
        self.lin0.model = nn.Sequential(nn.Dropout(), nn.Conv2d(4, 1, 1, bias=False))


def official_vqgan(checkout: Path):  # noqa: ANN201 (the official module)
    if not (checkout / "tats" / "tats_vqgan.py").is_file():
        sys.exit(f"{checkout}: not a checkout of songweige/TATS (no tats/tats_vqgan.py)")
    _stand_ins()
    package = types.ModuleType("tats")
    package.__path__ = [str(checkout / "tats")]
    sys.modules["tats"] = package
    module = importlib.import_module("tats.tats_vqgan")
    module.LPIPS = SmallLPIPS
    return module


def official_args(args: argparse.Namespace) -> argparse.Namespace:
    """The Namespace TATS's train_vqgan.py parses (its model and data arguments; the values that matter here)."""
    return argparse.Namespace(
        embedding_dim=args.embedding_dim, n_codes=args.n_codes, n_hiddens=args.n_hiddens, lr=3e-4,
        downsample=list(args.downsample), disc_channels=4, disc_layers=1, discriminator_iter_start=10000,
        disc_loss_type="hinge", image_gan_weight=1.0, video_gan_weight=1.0, l1_weight=4.0, gan_feat_weight=4.0,
        perceptual_weight=4.0, i3d_feat=False, restart_thres=1.0, no_random_restart=True, norm_type=args.norm,
        padding_type=args.padding, data_path="datasets/ucf101", sequence_length=args.frames,
        resolution=args.resolution, batch_size=args.batch, num_workers=8, image_channels=3,
        sample_every_n_frames=1, max_steps=2_000_000, gpus=8,
    )  # fmt: skip


def nudge(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or name.endswith(".N"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g) * (3.0 if name.endswith(".N") else 1.0))
            else:
                t.add_(0.05 * torch.randn(t.shape, generator=g))


def fit_codebook(model: nn.Module, x: torch.Tensor) -> None:
    """One training-mode call of the official codebook on encoder outputs of another batch: its own data-driven
    initialisation and one EMA update, so the codes lie among the features (random ones would all map to a few)."""
    with torch.no_grad():
        z = model.pre_vq_conv(model.encoder(x))
        model.codebook.train()
        model.codebook(z)
        model.codebook.eval()


def official_forward_reconstruction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x, log_image=True)`'s x_recon. The official forward moves a random frame index to the GPU with
    `.cuda()`; on a machine without one, that call returns the CPU tensor for the duration of this call only."""
    cuda = torch.Tensor.cuda
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self  # noqa: ARG005
    try:
        return model(x, log_image=True)[3]
    finally:
        torch.Tensor.cuda = cuda


def lightning_checkpoint(model: nn.Module, hparams: argparse.Namespace) -> dict:
    ae = [p for n, p in model.named_parameters() if "discriminator" not in n and "perceptual" not in n]
    disc = [p for n, p in model.named_parameters() if "discriminator" in n]
    optimizers = [torch.optim.Adam(ps, lr=hparams.lr, betas=(0.5, 0.9)).state_dict() for ps in (ae, disc)]
    checkpoint_callback = {
        "monitor": "val/recon_loss", "best_model_score": torch.tensor(0.25), "best_model_path": "",
        "current_score": torch.tensor(0.25), "dirpath": "lightning_logs/version_0/checkpoints",
    }  # fmt: skip
    return {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "1.5.4",
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/recon_loss', 'mode': 'min'}": checkpoint_callback},
        "optimizer_states": optimizers,
        "lr_schedulers": [],
        "hyper_parameters": {"args": hparams},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", type=Path, required=True, help="local checkout of songweige/TATS")
    p.add_argument(
        "--out", type=Path, required=True, help="path without suffix: writes <out>.ckpt and <out>.pt"
    )
    p.add_argument("--n-hiddens", type=int, default=4)
    p.add_argument("--downsample", type=int, nargs=3, default=(2, 4, 4), help="time, height, width")
    p.add_argument("--embedding-dim", type=int, default=8)
    p.add_argument("--n-codes", type=int, default=32)
    p.add_argument("--norm", choices=["batch", "group"], default="batch", help="batch: the released models'")
    p.add_argument("--padding", choices=["replicate", "constant", "reflect", "circular"], default="replicate")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    tats = official_vqgan(args.official.resolve())
    hparams = official_args(args)
    torch.manual_seed(args.seed)
    model = tats.VQGAN(hparams)
    nudge(model, args.seed)
    model.eval()
    g = torch.Generator().manual_seed(args.seed + 1)
    fit_codebook(
        model, torch.rand(args.batch, 3, args.frames, args.resolution, args.resolution, generator=g) - 0.5
    )
    x = torch.rand(args.batch, 3, args.frames, args.resolution, args.resolution, generator=g) - 0.5
    x = x.half().float()  # values a float16 holds exactly: the fixture stores the input in half the bytes
    with torch.no_grad():
        embeddings, codes = model.encode(x, include_embeddings=True)
        recon = official_forward_reconstruction(model, x)
        decoded = model.decode(codes)
    config = {k: v for k, v in vars(args).items() if k not in ("official", "out")}
    config["downsample"] = list(args.downsample)
    outputs = {"input": x.half(), "codes": codes, "embeddings": embeddings, "reconstruction": recon,
               "decoded": decoded, "config": config}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ckpt, pt = args.out.with_suffix(".ckpt"), args.out.with_suffix(".pt")
    torch.save(lightning_checkpoint(model, hparams), ckpt)
    torch.save(outputs, pt)
    print(f"wrote {ckpt} ({ckpt.stat().st_size / 1e3:.0f} kB) and {pt} ({pt.stat().st_size / 1e3:.0f} kB)")
    print(
        f"codes {tuple(codes.shape)} ({codes.unique().numel()} distinct), embeddings {tuple(embeddings.shape)}, "
    )
    print(f"reconstruction {tuple(recon.shape)}; config {config}")


if __name__ == "__main__":
    main()
