"""The official PVDM denoiser, weight for weight (sihyun-yu/PVDM, models/ddpm/unet.py: `UNetModel` with
configs/latent-diffusion/base.yaml). `diffusion.denoiser.layout: official` builds it; `pvdm import --pvdm-diffusion`
fills it from the authors' checkpoint. Written for pvdm from the facts of that code (docs/official-weights.md), not
copied. Parameter and buffer names are the official state dict's keys (without the trainer's `diffusion_model.`
wrapper prefix) but one: `time_embed.*` is `embed.time.*` (the name pvdm's checkpoints use, see __init__), so an
official checkpoint loads with strict=True after that one rename; the nesting (`input_blocks.i.j`, `in_layers.2`,
`out_layers.3`, `emb_layers.1`) is there for that.

What it computes (and where pvdm's own layout, pvdm.models.unet, differs):
- one 2D UNet shared by the three planes; every block runs on each plane on its own (GroupNorm statistics per
  plane), with no per-plane embedding: only the time embedding;
- after EVERY block of the way down (the input conv excepted), of the middle and of the way up, a joint attention
  over the tokens of the three planes concatenated (`input_attns`, `mid_attn`, `output_attns`); attention within
  each plane after the res block at the attention resolutions (`input_blocks.i.1`, `output_blocks.i.1`);
- resolution changes by res blocks with an average pool / nearest 2x upsample inside (`resblock_updown`), or by a
  strided conv / nearest upsample + conv;
- the condition (the previous clip's latent, zeros = none) concatenated to z_t on channels before the first conv
  (`cond_model`); the official `zeros` buffer is the null condition;
- attention is the "legacy" QKV order of improved-diffusion: the qkv channels are (head, q|k|v, head width).
The official code hard-codes the paper's planes (32 x 32 and 16 x 32, 2,048 positions); here the plane sizes come
from the latent spec, each plane side must halve exactly at every level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.families.roles import Denoiser, LatentSpec
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape, pack_planes, triplane_spec, unpack_planes
from pvdm.models.unet_parts import timestep_embedding, zero_init

Planes = list[torch.Tensor]  # [xy, yt, xt] features, each (B, ch, rows, cols)


def _each_plane(fn: Callable[[torch.Tensor], torch.Tensor], planes: Planes) -> Planes:
    """fn on every plane on its own. Not batched even where two planes share a shape (yt and xt): a conv over a
    batch of 2B rounds differently from two of B (~1e-6), and a sampler grows that past 1e-5 in a few steps."""
    return [fn(p) for p in planes]


class _Resample(nn.Module):
    """Average-pool 2x (down) or nearest 2x (up), the parameter-free resampling of the official res blocks."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "down":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return F.interpolate(x, scale_factor=2, mode="nearest")


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, time embedding (FiLM or added), GroupNorm-SiLU-dropout-conv; `resample` down or up
    between the first norm and conv, on the skip path too (the official `ResBlock(up=/down=True)`)."""

    def __init__(
        self, cin: int, cout: int, emb_dim: int, cfg: TriplaneUNetConfig, resample: str = ""
    ) -> None:
        super().__init__()
        groups = cfg.norm_groups
        self.scale_shift = cfg.use_scale_shift_norm
        self.in_layers = nn.Sequential(
            nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1)
        )
        self.resample = _Resample(resample) if resample else None
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * cout if self.scale_shift else cout))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, cout),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            zero_init(nn.Conv2d(cout, cout, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers[1](self.in_layers[0](x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.in_layers[2](h)
        e = self.emb_layers(emb)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention over the positions of (B, C, ...) features, residual (the official
    AttentionBlock and AttentionBlock1D, which hold the same tensors)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2)  # (B, C, N)
        qkv = self.qkv(self.norm(tokens))
        # legacy order: channels are (head, q|k|v, width). The official arithmetic (q and k each scaled by
        # width ** -1/4, softmax in float32) rather than a fused kernel: a sampler divides eps by sqrt(abar) ~ 0.07
        # at t = T - 1, so kernel rounding (~2e-6) would grow past 1e-5 in a few steps
        q, k, v = rearrange(qkv, "b (h three d) n -> three (b h) d n", h=self.heads, three=3)
        scale = q.shape[1] ** -0.25
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale).float().softmax(dim=-1).to(q.dtype)
        out = rearrange(torch.einsum("bts,bcs->bct", weight, v), "(b h) d n -> b (h d) n", h=self.heads)
        return (tokens + self.proj_out(out)).reshape(x.shape)


class _Downsample(nn.Module):
    """Stride-2 3x3 conv (`op`) or, without conv_resample, a 2x average pool (resblock_updown false)."""

    def __init__(self, channels: int, conv: bool) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if conv else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Upsample(nn.Module):
    """Nearest 2x, then a 3x3 conv with conv_resample (resblock_updown false)."""

    def __init__(self, channels: int, conv: bool) -> None:
        super().__init__()
        if conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class _Sequence(nn.Sequential):
    """Layers run in order; res blocks also get the time embedding (the official TimestepEmbedSequential)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, _ResBlock) else layer(x)
        return x


class OfficialTriplaneUNet(Denoiser):
    """The denoiser role with the official network: eps_theta(z_t, t, cond) on packed triplanes (B, C, L)."""

    def __init__(self, cfg: TriplaneUNetConfig, latent: LatentShape) -> None:
        super().__init__()
        self.cfg, self.latent = cfg, latent
        ch, heads, groups, off = cfg.model_channels, cfg.num_heads, cfg.norm_groups, cfg.official
        emb_dim = 4 * ch
        self.model_channels, self.cond_model = ch, off.cond_model
        if off.cond_model:  # the official null condition, saved with the weights
            self.register_buffer("zeros", torch.zeros(1, latent.channels, latent.length))
        # the official `time_embed.*`, kept as `embed.time.*`: pvdm's loader renames the former to the latter in
        # every diffusion checkpoint (pvdm.families.registry.RENAMED_PARAMETERS); pvdm.importing renames on import
        self.embed = nn.Module()
        self.embed.time = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attention(c: int) -> _Attention:
            return _Attention(c, heads, groups)

        def res(cin: int, cout: int, resample: str = "") -> _ResBlock:
            return _ResBlock(cin, cout, emb_dim, cfg, resample)

        in_ch = latent.channels * (2 if off.cond_model else 1)
        self.input_blocks = nn.ModuleList([_Sequence(nn.Conv2d(in_ch, ch, 3, padding=1))])
        self.input_attns = nn.ModuleList([nn.Identity()])
        skips, ds, last = [ch], 1, len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(_Sequence(*layers))
                self.input_attns.append(attention(ch))
                skips.append(ch)
            if level != last:
                down = res(ch, ch, "down") if off.resblock_updown else _Downsample(ch, off.conv_resample)
                self.input_blocks.append(_Sequence(down))
                self.input_attns.append(attention(ch))
                skips.append(ch)
                ds *= 2

        self.middle_block = _Sequence(res(ch, ch), attention(ch), res(ch, ch))
        self.mid_attn = attention(ch)

        self.output_blocks, self.output_attns = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skips.pop(), cfg.model_channels * mult)]
                ch = cfg.model_channels * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(
                        res(ch, ch, "up") if off.resblock_updown else _Upsample(ch, off.conv_resample)
                    )
                    ds //= 2
                self.output_blocks.append(_Sequence(*layers))
                self.output_attns.append(attention(ch))

        self.out = nn.Sequential(
            nn.GroupNorm(groups, ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(cfg.model_channels, latent.channels, 3, padding=1)),
        )

    @property
    def latent_spec(self) -> LatentSpec:
        return triplane_spec(self.latent)

    def _joint(self, attn: nn.Module, planes: Planes) -> Planes:
        """Attention over the tokens of the three planes concatenated (xy, yt, xt), split back."""
        if isinstance(attn, nn.Identity):
            return planes
        sizes = [p.shape[-2:] for p in planes]
        out = attn(torch.cat([p.flatten(2) for p in planes], dim=-1))
        chunks = out.split([r * k for r, k in sizes], dim=-1)
        return [c.unflatten(-1, s) for c, s in zip(chunks, sizes, strict=True)]

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if label is not None:
            raise ValueError("the official PVDM denoiser is unconditional on classes, but a label was given")
        b = z.shape[0]
        t = t.expand(b) if t.ndim == 0 else t
        emb = self.embed.time(timestep_embedding(t, self.model_channels))
        h = z
        if self.cond_model:  # no condition: the official zeros buffer
            c = self.zeros.expand(b, -1, -1) if cond is None else cond.to(z.dtype)
            h = torch.cat([z, c], dim=1)
        planes = list(unpack_planes(h, replace(self.latent, channels=h.shape[1])))

        def run(module: nn.Module, planes: Planes) -> Planes:
            return _each_plane(lambda x: module(x, emb), planes)

        skips = []
        for module, attn in zip(self.input_blocks, self.input_attns, strict=True):
            planes = self._joint(attn, run(module, planes))
            skips.append(planes)
        planes = self._joint(self.mid_attn, run(self.middle_block, planes))
        for module, attn in zip(self.output_blocks, self.output_attns, strict=True):
            skip = skips.pop()
            planes = [torch.cat([p, s], dim=1) for p, s in zip(planes, skip, strict=True)]
            planes = self._joint(attn, run(module, planes))
        return pack_planes(tuple(_each_plane(self.out, planes)))
