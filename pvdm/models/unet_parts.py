"""What the triplane UNet and the 3D UNet share: the time and class embedding, and the down/up layout.

The layout is improved-diffusion's: per level `num_res_blocks` blocks then a downsample (none after the last
level), a middle, and on the way up `num_res_blocks + 1` blocks per level, each eating one skip, then an upsample
(none at level 0). `unet_layout` computes the channels of every block once, so each network only says how to
build a block, a downsample and an upsample.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (B,) -> (B, dim), as in the Transformer / DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer that ends a residual branch, so every block starts as the identity (improved-diffusion)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def null_to_index(
    label: torch.Tensor | None, batch: int, num_classes: int, device: torch.device
) -> torch.Tensor:
    """Class ids for an embedding with a null class at index num_classes: None or negative ids become null."""
    if label is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    label = label.to(device=device, dtype=torch.long)
    if bool((label >= num_classes).any()):
        raise ValueError(
            f"class label {int(label.max())} out of range: the model knows {num_classes} classes"
        )
    return torch.where(label < 0, torch.full_like(label, num_classes), label)


class ConditionEmbedding(nn.Module):
    """(t, label) -> (B, 4 * channels): the timestep MLP, plus a class embedding with one extra null class (as in
    ADM and classifier-free guidance) when the model has classes."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.channels, self.num_classes, dim = channels, num_classes, 4 * channels
        self.time = nn.Sequential(nn.Linear(channels, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.channels))
        if self.label is not None:
            return emb + self.label(null_to_index(label, t.shape[0], self.num_classes, t.device))
        if label is not None:
            raise ValueError("this denoiser is unconditional (num_classes 0) but a label was given")
        return emb


class CheckpointedBlock(nn.Module):
    """A block whose `_forward` is recomputed in backward when `checkpointing` is on (memory for compute)."""

    checkpointing: bool = False

    def forward(self, *args: object) -> object:
        if self.checkpointing and self.training:
            return checkpoint(self._forward, *args, use_reentrant=False)
        return self._forward(*args)


class Op(NamedTuple):
    kind: str  # "block", "down" or "up"
    cin: int  # for an up-path block: its input channels, the skip's included
    cout: int
    level: int  # downsample factor 2**level of the resolution it works at


def unet_layout(
    model_channels: int, channel_mult: list[int], num_res_blocks: int
) -> tuple[list[Op], list[Op], int]:
    """(down ops, up ops, channels of the middle) of a UNet whose input conv gives `model_channels`."""
    ch, skips, down, last = model_channels, [model_channels], [], len(channel_mult) - 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            down.append(Op("block", ch, model_channels * mult, level))
            ch = model_channels * mult
            skips.append(ch)
        if level < last:
            down.append(Op("down", ch, ch, level))
            skips.append(ch)
    middle, up = ch, []
    for level, mult in reversed(list(enumerate(channel_mult))):
        for _ in range(num_res_blocks + 1):
            up.append(Op("block", ch + skips.pop(), model_channels * mult, level))
            ch = model_channels * mult
        if level > 0:
            up.append(Op("up", ch, ch, level))
    return down, up, middle
