"""The factorised space-time 3D UNet of video diffusion models (Ho et al. 2022, "Video Diffusion Models", sec. 3).

forward(z (B, C, T, H, W), t (B,), cond (B, C, T, H, W) | None, label (B,) | None) -> eps (B, C, T, H, W)

Every block works frame by frame in space and across frames in time, never on the full 3D volume at once:
    res block:            GroupNorm (per frame) - SiLU and a 1x3x3 convolution (a 2D conv per frame), twice, with the time
                          (and class) embedding as FiLM scale-shift between them;
    spatial attention:    multi-head attention over the H x W tokens of each frame;
    temporal attention:   multi-head attention over the T frames at each position, with a learned bias per
                          head and relative distance (frame i to frame j), so it knows order and distance.
Normalisation statistics are per frame too, so with temporal attention switched off the network is exactly an
image model applied to every frame (Ho et al. mask temporal attention this way to train on images and videos
jointly). Resolution changes only in space (time keeps its T frames, as in Ho et al.); the way up resizes to the exact size
of the matching skip, so odd frame sizes need no padding. `cond` (a clean latent, e.g. the previous clip for long
videos) is concatenated on channels like the triplane UNet's; None is the null (zero) condition. Classes have an
embedding with one extra null class, added to the time embedding (classifier-free guidance).

The same network serves pixel space (pixel VDM: the identity autoencoder) and latent grids (3D-VQGAN).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.families.roles import Denoiser, LatentSpec
from pvdm.families.vdm.config import UNet3DConfig
from pvdm.models.unet_parts import CheckpointedBlock, ConditionEmbedding, Op, unet_layout, zero_init


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics over each frame's (channels/groups, H, W), never across frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


def frame_norm(channels: int, groups: int) -> FrameGroupNorm:
    return FrameGroupNorm(math.gcd(groups, channels), channels)


def frame_conv(cin: int, cout: int) -> nn.Conv3d:
    """A 2D 3x3 convolution applied to every frame (kernel 1 in time)."""
    return nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))


class ResBlock3D(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNet3DConfig) -> None:
        super().__init__()
        self.norm1, self.conv1 = frame_norm(cin, cfg.norm_groups), frame_conv(cin, cout)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.dropout = frame_norm(cout, cfg.norm_groups), nn.Dropout(cfg.dropout)
        self.conv2 = zero_init(frame_conv(cout, cout))
        self.skip = nn.Identity() if cin == cout else nn.Conv3d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = rearrange(self.emb(F.silu(emb)), "b c -> b c 1 1 1").chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over sequences (N, L, c) with an optional additive bias (heads, L, L)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = frame_norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def attend(self, tokens: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(tokens), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))


class SpatialAttention(Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        tokens = rearrange(self.norm(x), "b c t h w -> (b t) (h w) c")
        out = rearrange(self.attend(tokens, None), "(b t) (h w) c -> b c t h w", b=b, t=t, h=h, w=w)
        return x + out


class TemporalAttention(Attention):
    """Attention across frames at each position, with a learned bias per head for each relative distance."""

    def __init__(self, channels: int, heads: int, groups: int, frames: int) -> None:
        super().__init__(channels, heads, groups)
        self.frames = frames
        self.relative_bias = nn.Parameter(torch.zeros(heads, 2 * frames - 1))
        offsets = torch.arange(frames)[None, :] - torch.arange(frames)[:, None] + frames - 1  # j - i, shifted
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"temporal attention was built for {self.frames} frames, got {t}")
        tokens = rearrange(self.norm(x), "b c t h w -> (b h w) t c")
        bias = self.relative_bias[:, self.offsets]  # (heads, T, T)
        out = rearrange(self.attend(tokens, bias), "(b h w) t c -> b c t h w", b=b, h=h, w=w)
        return x + out


class Block3D(CheckpointedBlock):
    """A res block, then (at attention resolutions) spatial and temporal attention."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNet3DConfig, frames: int, attention: bool):
        super().__init__()
        self.res = ResBlock3D(cin, cout, emb_dim, cfg)
        self.attn = (
            nn.ModuleList(
                [SpatialAttention(cout, cfg.num_heads, cfg.norm_groups)]
                + (
                    [TemporalAttention(cout, cfg.num_heads, cfg.norm_groups, frames)]
                    if cfg.temporal_attention
                    else []
                )
            )
            if attention
            else nn.ModuleList()
        )
        self.checkpointing = cfg.activation_checkpointing

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        for layer in self.attn:
            x = layer(x)
        return x


class Downsample3D(nn.Module):
    """Stride-2 in space only: (T, H, W) -> (T, ceil(H / 2), ceil(W / 2))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3D(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = frame_conv(channels, channels)

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=like.shape[-3:], mode="nearest"))


class UNet3D(Denoiser):
    def __init__(self, cfg: UNet3DConfig, spec: LatentSpec) -> None:
        super().__init__()
        if len(spec.shape) != 4:
            raise ValueError(
                f"unet3d models (C, T, H, W) latents (pixels or a 3D latent grid), got latents of shape {spec.shape}"
            )
        self.cfg, self.spec = cfg, spec
        channels, frames = spec.shape[0], spec.shape[1]
        ch = cfg.model_channels
        emb_dim = 4 * ch
        self.embed = ConditionEmbedding(ch, cfg.num_classes)
        self.num_classes = cfg.num_classes
        self.input_conv = frame_conv(2 * channels, ch)  # z and cond on channels

        def build(op: Op) -> nn.Module:
            if op.kind == "block":
                return Block3D(
                    op.cin, op.cout, emb_dim, cfg, frames, 2**op.level in cfg.attention_resolutions
                )
            return Downsample3D(op.cout) if op.kind == "down" else Upsample3D(op.cout)

        down, up, ch = unet_layout(cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks)
        self.down = nn.ModuleList(build(op) for op in down)
        mid = Block3D(ch, ch, emb_dim, cfg, frames, attention=True)
        self.middle = nn.ModuleList([mid, Block3D(ch, ch, emb_dim, cfg, frames, attention=False)])
        self.up = nn.ModuleList(build(op) for op in up)
        ch = up[-1].cout
        self.out = nn.Sequential(
            frame_norm(ch, cfg.norm_groups), nn.SiLU(), zero_init(frame_conv(ch, channels))
        )

    @property
    def latent_spec(self) -> LatentSpec:
        return self.spec

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = torch.zeros_like(z) if cond is None else cond.to(z.dtype)
        t = t.expand(z.shape[0]) if t.ndim == 0 else t
        emb = self.embed(t, label)
        h = self.input_conv(torch.cat([z, cond], dim=1))  # (B, ch, T, H, W)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, Block3D) else module(h)
            skips.append(h)
        for module in self.middle:
            h = module(h, emb)
        for module in self.up:
            if isinstance(module, Upsample3D):
                h = module(h, like=skips[-1])
            else:
                h = module(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
