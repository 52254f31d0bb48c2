"""The official PVDM autoencoder, weight for weight (sihyun-yu/PVDM, models/autoencoder/autoencoder_vit.py:
`ViTAutoencoder`). `autoencoder.model.layout: official` builds it; `pvdm import --pvdm-autoencoder` fills it from
the authors' checkpoint. Written for pvdm from the facts of that code (docs/official-weights.md), not copied. Its
parameter and buffer names are the official state dict's keys, so an official checkpoint loads with strict=True
and no renaming; the nesting below (`layers.i.j.fn`, `to_out.0`, `net.3`, `to_pixel.1`) is there for that.

What it computes, and where pvdm's own layout (pvdm.models.autoencoder) differs:
- encoder and decoder: TimeSformer blocks (pre-norm time attention, space attention, GEGLU MLP), positions as
  rotary embeddings on queries and keys (1D over frames; axial over rows and columns), no final norm; heads of
  `official.head_dim` whatever the width. Patches are flattened (row, column, channel).
- projections, one transformer per axis: a learned token is appended AFTER the sequence, learned positions are
  added, and the output is read at index 0: the sequence's first element (first frame, row or column), not the
  token. Pre-norm blocks with a GELU MLP.
- latents: a 1x1 conv (width -> C) then tanh; decoding starts with a 1x1 conv (C -> width) per plane, and the
  three planes are summed (broadcast) into the grid, not concatenated.
- pixels: ConvTranspose2d(width, 3, patch, stride patch) per frame, then 2 * sigmoid - 1.

Official plane names: xy = z_s (attends over time), yt = z_h (over rows), xt = z_w (over columns). The official
`extract` packs them as pvdm does (z_s, z_h, z_w flattened row-major), so the latents are pvdm's triplane latents.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from pvdm.config.base import ConfigError
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.triplane.config import TriplaneAEConfig
from pvdm.models.latent import LatentShape, pack_planes, triplane_spec, unpack_planes

Rotary = tuple[torch.Tensor, torch.Tensor]  # (sin, cos), each (positions, rotated features)


# --- rotary positions -------------------------------------------------------------------------------------------


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): adjacent features form the rotated pairs."""
    pairs = rearrange(x, "... (d two) -> ... d two", two=2)
    return rearrange(torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1), "... d two -> ... (d two)")


def _apply_rotary(x: torch.Tensor, rotary: Rotary) -> torch.Tensor:
    """Rotate the first sin.shape[-1] features of x (..., positions, head_dim); the rest pass unchanged."""
    sin, cos = rotary
    k = sin.shape[-1]
    return torch.cat((x[..., :k] * cos + _rotate_pairs(x[..., :k]) * sin, x[..., k:]), dim=-1)


class _FrameRotary(nn.Module):
    """1D rotary positions over frames. The official frequencies are laid out [f, f] (concatenated) while the
    rotation pairs adjacent features: reproduced as is."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freqs", 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def forward(self, n: int) -> Rotary:
        steps = torch.arange(n, device=self.inv_freqs.device, dtype=self.inv_freqs.dtype)
        freqs = steps[:, None] * self.inv_freqs[None]  # (n, head_dim / 2)
        freqs = torch.cat((freqs, freqs), dim=-1)
        return freqs.sin(), freqs.cos()


class _AxialRotary(nn.Module):
    """2D rotary positions over a rows x cols grid: row and column angles from positions in [-1, 1], each feature
    used twice (one rotated pair)."""

    def __init__(self, head_dim: int, max_freq: float = 10.0) -> None:
        super().__init__()
        scales = torch.logspace(0.0, math.log(max_freq / 2) / math.log(2), head_dim // 4, base=2)
        self.register_buffer("scales", scales)

    def forward(self, rows: int, cols: int) -> Rotary:
        def angles(n: int) -> torch.Tensor:  # (n, head_dim // 4)
            pos = torch.linspace(-1.0, 1.0, steps=n, device=self.scales.device).unsqueeze(-1)
            return pos * self.scales[None] * math.pi

        r = repeat(angles(rows), "i d -> i j d", j=cols)
        c = repeat(angles(cols), "j d -> i j d", i=rows)
        sin = torch.cat((r.sin(), c.sin()), dim=-1)
        cos = torch.cat((r.cos(), c.cos()), dim=-1)
        return tuple(repeat(t, "i j d -> (i j) (d two)", two=2) for t in (sin, cos))  # type: ignore[return-value]


# --- building blocks ----------------------------------------------------------------------------------------------


class _PreNorm(nn.Module):
    def __init__(self, width: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(width), fn

    def forward(self, x: torch.Tensor, *args: object) -> torch.Tensor:
        return self.fn(self.norm(x), *args)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.matmul(torch.matmul(q, k.transpose(-1, -2)).softmax(dim=-1), v)


class _SpaceTimeAttention(nn.Module):
    """Attention over one axis of a (frames x positions) token grid, with rotary positions on that axis."""

    def __init__(self, width: int, heads: int, head_dim: int, axis: str) -> None:
        super().__init__()
        self.heads, self.scale, self.axis = heads, head_dim**-0.5, axis
        self.to_qkv = nn.Linear(width, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * head_dim, width))

    def forward(self, x: torch.Tensor, frames: int, rotary: Rotary) -> torch.Tensor:
        """x (B, frames * positions, width); rotary for the attended axis."""
        pattern = "b (f n) (h d) -> b h f n d" if self.axis == "space" else "b (f n) (h d) -> b h n f d"
        q, k, v = (rearrange(t, pattern, f=frames, h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = _attend(_apply_rotary(q * self.scale, rotary), _apply_rotary(k, rotary), v)
        back = "b h f n d -> b (f n) (h d)" if self.axis == "space" else "b h n f d -> b (f n) (h d)"
        return self.to_out(rearrange(out, back))


class _Geglu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * F.gelu(gate)


class _MLP(nn.Module):
    """width -> hidden -> width; gated: GEGLU (the TimeSformer's, 2 * hidden wide), else GELU (the projections').
    The linears sit at `net.0` and `net.3`, the official keys."""

    def __init__(self, width: int, hidden: int, gated: bool) -> None:
        super().__init__()
        first, act = (
            (nn.Linear(width, 2 * hidden), _Geglu()) if gated else (nn.Linear(width, hidden), nn.GELU())
        )
        self.net = nn.Sequential(first, act, nn.Identity(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _SpaceTimeStack(nn.Module):
    """The TimeSformer encoder (with `patch_dim`: embeds flattened patches first) or decoder."""

    def __init__(self, cfg: TriplaneAEConfig, depth: int, patch_dim: int | None = None) -> None:
        super().__init__()
        width, heads, head_dim = cfg.width, cfg.heads, cfg.official.head_dim
        hidden = round(width * cfg.mlp_ratio)
        if patch_dim is not None:
            self.to_patch_embedding = nn.Linear(patch_dim, width)
        self.frame_rot_emb = _FrameRotary(head_dim)
        self.image_rot_emb = _AxialRotary(head_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PreNorm(width, _SpaceTimeAttention(width, heads, head_dim, "time")),
                    _PreNorm(width, _SpaceTimeAttention(width, heads, head_dim, "space")),
                    _PreNorm(width, _MLP(width, hidden, gated=True)),
                ]
            )
            for _ in range(depth)
        )
        self.checkpointing = cfg.activation_checkpointing

    def forward(self, x: torch.Tensor, frames: int, rows: int, cols: int) -> torch.Tensor:
        """x (B, frames * rows * cols, width) -> same shape."""
        rot_t, rot_s = self.frame_rot_emb(frames), self.image_rot_emb(rows, cols)
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(self._layer, layer, x, frames, rot_t, rot_s, use_reentrant=False)
            else:
                x = self._layer(layer, x, frames, rot_t, rot_s)
        return x

    @staticmethod
    def _layer(
        layer: nn.ModuleList, x: torch.Tensor, frames: int, rot_t: Rotary, rot_s: Rotary
    ) -> torch.Tensor:
        time_attn, space_attn, mlp = layer
        x = time_attn(x, frames, rot_t) + x
        x = space_attn(x, frames, rot_s) + x
        return mlp(x) + x


class _ProjectionAttention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, head_dim**-0.5
        self.to_qkv = nn.Linear(width, 3 * heads * head_dim, bias=False)
        single = heads == 1 and head_dim == width  # the official has no output projection then
        self.to_out = nn.Identity() if single else nn.Sequential(nn.Linear(heads * head_dim, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1)
        )
        weights = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        return self.to_out(rearrange(torch.matmul(weights, v), "b h n d -> b n (h d)"))


class _ProjectionTransformer(nn.Module):
    def __init__(self, cfg: TriplaneAEConfig) -> None:
        super().__init__()
        width, sizes = cfg.width, cfg.official
        heads, head_dim, hidden = (
            sizes.projection_heads,
            sizes.projection_head_width(width),
            sizes.projection_mlp,
        )
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PreNorm(width, _ProjectionAttention(width, heads, head_dim)),
                    _PreNorm(width, _MLP(width, hidden, gated=False)),
                ]
            )
            for _ in range(cfg.projection_depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, mlp in self.layers:
            x = attn(x) + x
            x = mlp(x) + x
        return x


# --- the autoencoder ----------------------------------------------------------------------------------------------


class OfficialTriplaneAutoencoder(VideoAutoencoder):
    """The autoencoder role with the official network: latents (B, C, L) are pvdm's packed triplanes."""

    def __init__(self, cfg: TriplaneAEConfig, frames: int, resolution: int) -> None:
        super().__init__()
        d, width, c = cfg.patch_size, cfg.width, cfg.latent_channels
        if resolution % d:
            raise ConfigError(
                f"autoencoder.model.patch_size: resolution {resolution} is not divisible by {d}"
            )
        self.cfg, self.frames, self.resolution, self.grid = cfg, frames, resolution, resolution // d
        self.latent_shape = LatentShape(c, frames, self.grid, self.grid)

        self.encoder = _SpaceTimeStack(cfg, cfg.encoder_depth, patch_dim=3 * d * d)
        self.decoder = _SpaceTimeStack(cfg, cfg.decoder_depth)
        # index 1: the official key (its index 0 only rearranges tokens into frames)
        self.to_pixel = nn.Sequential(nn.Identity(), nn.ConvTranspose2d(width, 3, kernel_size=d, stride=d))
        # an official buffer the computation never reads, kept so the state dict is the official one
        self.register_buffer("coords", torch.linspace(-1, 1, steps=frames).unsqueeze(-1))
        for plane, length in (("xy", frames), ("yt", self.grid), ("xt", self.grid)):
            setattr(self, f"{plane}_token", nn.Parameter(torch.randn(1, 1, width)))
            setattr(self, f"{plane}_pos_embedding", nn.Parameter(torch.randn(1, length + 1, width)))
            setattr(self, f"{plane}_quant_attn", _ProjectionTransformer(cfg))
            setattr(self, f"pre_{plane}", nn.Conv2d(width, c, 1))
            setattr(self, f"post_{plane}", nn.Conv2d(c, width, 1))

    @property
    def latent_spec(self) -> LatentSpec:
        return triplane_spec(self.latent_shape)

    def _project(self, plane: str, seq: torch.Tensor) -> torch.Tensor:
        """seq (N, L, width) -> (N, width): append the plane's token, add positions, read index 0 (the first
        element of the sequence, as the official code does; the token only takes part in attention)."""
        token = getattr(self, f"{plane}_token").expand(seq.shape[0], -1, -1)
        x = torch.cat([seq, token], dim=1) + getattr(self, f"{plane}_pos_embedding")[:, : seq.shape[1] + 1]
        return getattr(self, f"{plane}_quant_attn")(x)[:, 0]

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, H, W) in [-1, 1] -> packed latent (B, C, L) in [-1, 1] (the official `extract`)."""
        self._check_video(video)
        b, s, g, d = video.shape[0], self.frames, self.grid, self.cfg.patch_size
        tokens = rearrange(video, "b c s (h p) (w q) -> b (s h w) (p q c)", p=d, q=d)
        u = self.encoder(self.encoder.to_patch_embedding(tokens), s, g, g)
        u = rearrange(u, "b (s h w) c -> b s h w c", s=s, h=g)
        z_s = rearrange(
            self._project("xy", rearrange(u, "b s h w c -> (b h w) s c")), "(b h w) c -> b c h w", b=b, h=g
        )
        z_h = rearrange(
            self._project("yt", rearrange(u, "b s h w c -> (b s w) h c")), "(b s w) c -> b c s w", b=b, s=s
        )
        z_w = rearrange(
            self._project("xt", rearrange(u, "b s h w c -> (b s h) w c")), "(b s h) c -> b c s h", b=b, s=s
        )
        return pack_planes(
            (torch.tanh(self.pre_xy(z_s)), torch.tanh(self.pre_yt(z_h)), torch.tanh(self.pre_xt(z_w)))
        )

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> video (B, 3, S, H, W) in (-1, 1) (the official `decode_from_sample`, at any frame count)."""
        z_s, z_h, z_w = unpack_planes(latent, self.latent_shape)
        s, g = self.frames, self.grid
        grid = (  # (B, width, S, H', W'): the three planes broadcast and summed
            self.post_xy(z_s)[:, :, None] + self.post_yt(z_h)[:, :, :, None] + self.post_xt(z_w)[..., None]
        )
        v = self.decoder(rearrange(grid, "b c s h w -> b (s h w) c"), s, g, g)
        frames = self.to_pixel(rearrange(v, "b (s h w) c -> (b s) c h w", s=s, h=g))
        return rearrange(2 * torch.sigmoid(frames) - 1, "(b s) c h w -> b c s h w", s=s)

    def _check_video(self, x: torch.Tensor) -> None:
        expected = (3, self.frames, self.resolution, self.resolution)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"autoencoder expects video (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
