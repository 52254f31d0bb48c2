"""Autoencoder objective: pixel L1 + LPIPS, and the optional hinge GAN with feature matching.

Each term is a small function; the step function decides which are active. The pixel term is L1, as in the official
PVDM code (`pixel_loss: mse` is there for the 3D-VQGAN family, whose slides use MSE).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.config.autoencoder import AELossConfig
from pvdm.models.discriminator import DiscriminatorOutput

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N,3,H,W) x2 in [-1,1] -> (N,...)


def pick_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, 3, S, H, W), index (B, k) frame numbers -> frames (B*k, 3, H, W)."""
    b, c, _, h, w = x.shape
    gather = index[:, None, :, None, None].expand(b, c, -1, h, w)
    return rearrange(torch.gather(x, 2, gather), "b c k h w -> (b k) c h w")


def random_frame_index(batch: int, frames: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct random frame numbers per clip, (B, k)."""
    return torch.argsort(torch.rand(batch, frames, generator=generator), dim=1)[:, : min(k, frames)]


def reconstruction_loss(
    x: torch.Tensor,
    x_rec: torch.Tensor,
    perceptual: PerceptualFn,
    cfg: AELossConfig,
    frame_index: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted pixel loss (L1, or MSE as in the 3D-VQGAN slides: `pixel_loss`) over all pixels + LPIPS on the
    chosen frames of each clip."""
    diff = x_rec - x
    pixel = diff.abs().mean() if cfg.pixel_loss == "l1" else diff.pow(2).mean()
    total = cfg.l1_weight * pixel
    parts = {cfg.pixel_loss: pixel.detach()}
    if cfg.lpips_weight > 0:
        idx = frame_index.to(x.device)
        lp = perceptual(pick_frames(x_rec, idx).float(), pick_frames(x, idx).float()).mean()
        total = total + cfg.lpips_weight * lp
        parts["lpips"] = lp.detach()
    return total, parts


def _scores(disc: nn.Module, video: torch.Tensor, frame_index: torch.Tensor) -> DiscriminatorOutput:
    """D's scores of each clip's first picked frame and of the whole clip, video (B, 3, S, H, W).

    disc: a VideoDiscriminator or its DistributedDataParallel wrapper, so always `disc(...)`, never
    `disc.frame` / `disc.clip`: the wrapper has no such attributes, and only its forward syncs gradients."""
    return disc(pick_frames(video, frame_index[:, :1].to(video.device)), video)


def discriminator_hinge_loss(
    disc: nn.Module, x: torch.Tensor, x_rec: torch.Tensor, frame_index: torch.Tensor
) -> torch.Tensor:
    """Hinge loss for D: relu(1 - D(real)) + relu(1 + D(fake)), summed over the 2D and 3D critics.

    Real and fake are scored in ONE forward, concatenated along the batch, so that under DDP each backward
    follows exactly one forward of D, the pattern DDP's gradient reducer is built for. The critics normalise
    with GroupNorm, per sample, so this equals scoring real and fake in two separate calls."""
    b = x.shape[0]
    both = _scores(disc, torch.cat([x, x_rec.detach().to(x.dtype)]), frame_index.repeat(2, 1))  # (2B, ...)
    return sum(F.relu(1 - s[:b]).mean() + F.relu(1 + s[b:]).mean() for s in both.logits)


def generator_adversarial_loss(
    disc: nn.Module, x: torch.Tensor, x_rec: torch.Tensor, frame_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hinge generator loss -D(fake), feature matching L1 between D's features of real and fake).

    The real features come from a no_grad forward, which DDP does not track; the fake from the one forward
    whose backward reaches D's parameters (their grads are synced, then zeroed before D's own step)."""
    with torch.no_grad():
        real = _scores(disc, x, frame_index)
    fake = _scores(disc, x_rec, frame_index)
    g_loss = sum(-f.mean() for f in fake.logits)
    # summed over the discriminators' layers, as the reference implementation does (a mean is ~8x weaker)
    fm = sum(F.l1_loss(f, r) for f, r in zip(fake.features, real.features, strict=True))
    return g_loss, fm
