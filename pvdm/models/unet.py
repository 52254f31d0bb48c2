"""The triplane denoiser of PVDM (paper section 3.2): one 2D UNet shared by the three latent planes.

forward(z (B, C, L), t (B,), cond (B, C, L) | None, label (B,) | None) -> eps (B, C, L)

    z and cond are unpacked into z_s (H' x W'), z_h (S x W'), z_w (S x H') and concatenated on channels
    (cond None = the null condition, zeros). Each plane then runs through the SAME modules as its own tensor at
    its own size, so convolutions and GroupNorm never mix planes; the only exchange between planes is the joint
    attention, which concatenates the token sequences of all three planes, attends, and splits them back.
    Every level halves each plane (ceil: a stride-2 conv), and the way up interpolates back to the exact size of
    the matching skip, so odd and tiny planes (S = 4 over four levels: 4 -> 2 -> 1 -> 1) need no padding.

Departures from the official code, and why: its joint attention runs after every block at every level plus a
per-plane attention at the attention resolutions; here (attention_layout: compact, the default) one joint attention
closes each block at the attention resolutions (it covers the per-plane one, its keys include the plane's own
tokens) and in the middle block. attention_layout: official builds the official layout instead;
`python -m bench.attention_layout` trains both on the demo and compares FVD and cost.
A learned per-plane vector is added to the time embedding, because z_h and z_w have the same size and a
weight-shared network otherwise cannot tell them apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.families.roles import Denoiser, LatentSpec
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape, pack_planes, triplane_spec, unpack_planes
from pvdm.models.unet_parts import (
    CheckpointedBlock,
    ConditionEmbedding,
    Op,
    timestep_embedding,
    unet_layout,
    zero_init,
)

__all__ = ["JointAttention", "TriplaneUNet", "paper_unet", "timestep_embedding"]

PlaneList = list[torch.Tensor]  # [z_s, z_h, z_w] features, each (B, ch, rows, cols)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    # gcd: narrow test and demo widths (8, 16) are not multiples of 32 groups
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the time embedding as FiLM (scale-shift) or an added bias."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: TriplaneUNetConfig) -> None:
        super().__init__()
        self.scale_shift = cfg.use_scale_shift_norm
        self.norm1 = group_norm(cin, cfg.norm_groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout if self.scale_shift else cout)
        self.norm2 = group_norm(cout, cfg.norm_groups)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = zero_init(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = rearrange(self.emb(F.silu(emb)), "b c -> b c 1 1")
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class JointAttention(nn.Module):
    """Multi-head self-attention over the tokens of all three planes at once: how the planes model p(z_s, z_h, z_w)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def forward(self, planes: PlaneList) -> PlaneList:
        sizes = [p.shape[-2:] for p in planes]
        tokens = torch.cat(
            [rearrange(self.norm(p), "b c r k -> b (r k) c") for p in planes], dim=1
        )  # (B, N, c)
        q, k, v = rearrange(self.qkv(tokens), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        chunks = self.proj(out).split([r * k for r, k in sizes], dim=1)
        return [
            p + rearrange(o, "b (r k) c -> b c r k", r=r, k=k)
            for p, o, (r, k) in zip(planes, chunks, sizes, strict=True)
        ]


class PlaneAttention(JointAttention):
    """Multi-head self-attention within each plane on its own (the official layout's per-plane attention)."""

    def forward(self, planes: PlaneList) -> PlaneList:
        return [super(PlaneAttention, self).forward([p])[0] for p in planes]


class PlaneBlock(CheckpointedBlock):
    """A res block applied to each plane with its own embedding, then (optionally) attention within each plane,
    then (optionally) joint attention."""

    def __init__(
        self,
        res: ResBlock,
        attn: JointAttention | None,
        checkpointing: bool,
        plane_attn: PlaneAttention | None = None,
    ) -> None:
        super().__init__()
        self.res, self.attn, self.checkpointing = res, attn, checkpointing
        self.plane_attn = plane_attn

    def _forward(self, planes: PlaneList, embs: PlaneList) -> PlaneList:
        planes = [self.res(h, e) for h, e in zip(planes, embs, strict=True)]
        if self.plane_attn is not None:
            planes = self.plane_attn(planes)
        return self.attn(planes) if self.attn is not None else planes


class Downsample(nn.Module):
    """Stride-2 3x3 conv per plane: (r, k) -> (ceil(r / 2), ceil(k / 2))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, planes: PlaneList) -> PlaneList:
        return [self.conv(p) for p in planes]


class Upsample(nn.Module):
    """Nearest resize to the exact size of the matching skip, then a 3x3 conv: undoes ceil-halving of any size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, planes: PlaneList, like: PlaneList) -> PlaneList:
        return [
            self.conv(F.interpolate(p, size=s.shape[-2:], mode="nearest"))
            for p, s in zip(planes, like, strict=True)
        ]


class TriplaneUNet(Denoiser):
    def __init__(self, cfg: TriplaneUNetConfig, latent: LatentShape) -> None:
        super().__init__()
        self.cfg, self.latent = cfg, latent
        ch = cfg.model_channels
        emb_dim = 4 * ch
        self.embed = ConditionEmbedding(ch, cfg.num_classes)
        self.num_classes = cfg.num_classes
        self.plane_embed = nn.Parameter(torch.zeros(3, emb_dim)) if cfg.plane_embedding else None
        self.input_conv = nn.Conv2d(2 * latent.channels, ch, 3, padding=1)  # z and cond on channels

        official = cfg.attention_layout == "official"

        def block(cin: int, cout: int, attention: bool, level_block: bool = True) -> PlaneBlock:
            # official: joint attention after every block of every level, per-plane attention where `attention`
            joint = attention or (official and level_block)
            attn = JointAttention(cout, cfg.num_heads, cfg.norm_groups) if joint else None
            plane = PlaneAttention(cout, cfg.num_heads, cfg.norm_groups) if official and attention else None
            return PlaneBlock(ResBlock(cin, cout, emb_dim, cfg), attn, cfg.activation_checkpointing, plane)

        def build(op: Op) -> nn.Module:
            if op.kind == "block":
                return block(op.cin, op.cout, 2**op.level in cfg.attention_resolutions)
            return Downsample(op.cout) if op.kind == "down" else Upsample(op.cout)

        down, up, ch = unet_layout(cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks)
        self.down = nn.ModuleList(build(op) for op in down)
        self.middle = nn.ModuleList(
            [block(ch, ch, cfg.mid_attention), block(ch, ch, False, level_block=False)]
        )
        self.up = nn.ModuleList(build(op) for op in up)
        ch = up[-1].cout

        self.out = nn.Sequential(
            group_norm(ch, cfg.norm_groups),
            nn.SiLU(),
            zero_init(nn.Conv2d(ch, latent.channels, 3, padding=1)),
        )

    @property
    def latent_spec(self) -> LatentSpec:
        return triplane_spec(self.latent)

    def plane_embeddings(self, t: torch.Tensor, label: torch.Tensor | None = None) -> PlaneList:
        """Time (and class) embedding (B, E), plus each plane's learned vector: one (B, E) per plane."""
        emb = self.embed(t, label)
        if self.plane_embed is None:
            return [emb, emb, emb]
        return [emb + self.plane_embed[i] for i in range(3)]

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = torch.zeros_like(z) if cond is None else cond.to(z.dtype)
        t = t.expand(z.shape[0]) if t.ndim == 0 else t
        embs = self.plane_embeddings(t, label)
        pairs = zip(unpack_planes(z, self.latent), unpack_planes(cond, self.latent), strict=True)
        planes = [self.input_conv(torch.cat(pair, dim=1)) for pair in pairs]  # (B, ch, r, k) per plane

        skips = [planes]
        for module in self.down:
            planes = module(planes, embs) if isinstance(module, PlaneBlock) else module(planes)
            skips.append(planes)
        for module in self.middle:
            planes = module(planes, embs)
        for module in self.up:
            if isinstance(module, Upsample):
                planes = module(planes, like=skips[-1])
            else:
                skip = skips.pop()
                planes = module([torch.cat([p, s], dim=1) for p, s in zip(planes, skip, strict=True)], embs)
        return pack_planes(tuple(self.out(p) for p in planes))  # (B, C, L)


PAPER_LATENT = LatentShape(channels=4, frames=16, height=32, width=32)  # 256x256x16, patch 8: 2,048 positions


def paper_unet(latent: LatentShape = PAPER_LATENT, **overrides: object) -> TriplaneUNet:
    """The official PVDM UNet on the paper's latent layout; override fields, e.g. model_channels=16 for tests."""
    return TriplaneUNet(TriplaneUNetConfig(**overrides), latent)
