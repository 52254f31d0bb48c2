"""Transformer blocks for the autoencoder: plain pre-norm blocks and TimeSformer's divided space-time block.

Attention uses PyTorch's scaled_dot_product_attention, so flash / memory-efficient kernels are picked on GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, L, D) -> (N, L, D), every token attends to every token of its sequence
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(rearrange(y, "n h l d -> n l (h d)"))


class MLP(nn.Sequential):
    def __init__(self, width: int, ratio: float) -> None:
        hidden = int(width * ratio)
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class TransformerBlock(nn.Module):
    """Pre-norm block over sequences (N, L, D)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), SelfAttention(width, heads)
        self.norm2, self.mlp = nn.LayerNorm(width), MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DividedSpaceTimeBlock(nn.Module):
    """TimeSformer's divided attention: attend over time at each position, then over space in each frame.

    Cost per block is O(S^2 N + S N^2) for S frames of N patches, against O((S N)^2) for joint attention.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_t, self.attn_t = nn.LayerNorm(width), SelfAttention(width, heads)
        self.norm_s, self.attn_s = nn.LayerNorm(width), SelfAttention(width, heads)
        self.norm_mlp, self.mlp = nn.LayerNorm(width), MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, S, N, D)
        b, s, n, _ = x.shape
        t = rearrange(x, "b s n d -> (b n) s d")
        t = t + self.attn_t(self.norm_t(t))
        x = rearrange(t, "(b n) s d -> (b s) n d", b=b, n=n)
        x = x + self.attn_s(self.norm_s(x))
        x = x + self.mlp(self.norm_mlp(x))
        return rearrange(x, "(b s) n d -> b s n d", b=b, s=s)


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """Apply blocks in order; with checkpointing, activations are recomputed in backward to save memory."""
    for block in blocks:
        if checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x
