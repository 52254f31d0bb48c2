"""The triplane autoencoder of PVDM (paper section 3.1).

encode: video x (B, 3, S, H, W) in [-1, 1]
    -> patch tokens (B, S, H'W', D) -> TimeSformer encoder -> u (B, S, H', W', D)
    -> three projection transformers, one per axis, each reading a learned query token:
       z_s (B, C, H', W')  attends over time     (content)
       z_h (B, C, S, W')   attends over height
       z_w (B, C, S, H')   attends over width
    -> tanh, so latents are bounded in [-1, 1] like the diffusion model's clipping range.
decode: broadcast the planes back to a grid v_shw = [z_s_hw, z_h_sw, z_w_sh] (B, 3C, S, H', W')
    -> TimeSformer decoder -> pixels (B, 3, S, H, W).
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from pvdm.config.base import ConfigError
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.triplane.config import TriplaneAEConfig
from pvdm.models.latent import LatentShape, Planes, pack_planes, triplane_spec, unpack_planes
from pvdm.models.transformer import DividedSpaceTimeBlock, TransformerBlock, run_blocks


class AxisProjector(nn.Module):
    """Projects sequences (N, L, D) along one axis to one latent vector each (N, C) via a learned query token."""

    def __init__(self, cfg: TriplaneAEConfig, length: int) -> None:
        super().__init__()
        width = cfg.width
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.zeros(1, length + 1, width))
        self.blocks = nn.ModuleList(
            TransformerBlock(width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.projection_depth)
        )
        self.norm = nn.LayerNorm(width)
        self.to_latent = nn.Linear(width, cfg.latent_channels)
        self.checkpointing = cfg.activation_checkpointing
        nn.init.trunc_normal_(self.query, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(seq.shape[0], -1, -1)
        x = torch.cat([query, seq], dim=1) + self.pos
        x = run_blocks(self.blocks, x, self.checkpointing)
        return torch.tanh(self.to_latent(self.norm(x[:, 0])))


class TriplaneAutoencoder(VideoAutoencoder):
    """The autoencoder role of the PVDM family: latents are the three planes packed as (B, C, L)."""

    def __init__(self, cfg: TriplaneAEConfig, frames: int, resolution: int) -> None:
        super().__init__()
        d = cfg.patch_size
        if resolution % d:
            raise ConfigError(
                f"autoencoder.model.patch_size: resolution {resolution} is not divisible by {d}"
            )
        self.cfg, self.frames, self.resolution = cfg, frames, resolution
        self.grid = resolution // d
        self.latent_shape = LatentShape(cfg.latent_channels, frames, self.grid, self.grid)
        width, tokens = cfg.width, self.grid * self.grid

        self.patch_embed = nn.Linear(3 * d * d, width)
        self.enc_pos_space = nn.Parameter(torch.zeros(1, 1, tokens, width))
        self.enc_pos_time = nn.Parameter(torch.zeros(1, frames, 1, width))
        self.encoder = self._stack(cfg.encoder_depth)
        self.enc_norm = nn.LayerNorm(width)
        self.project_s = AxisProjector(cfg, frames)  # over time at each (h, w)
        self.project_h = AxisProjector(cfg, self.grid)  # over height at each (s, w)
        self.project_w = AxisProjector(cfg, self.grid)  # over width at each (s, h)

        self.latent_embed = nn.Linear(3 * cfg.latent_channels, width)
        self.dec_pos_space = nn.Parameter(torch.zeros(1, 1, tokens, width))
        self.dec_pos_time = nn.Parameter(torch.zeros(1, frames, 1, width))
        self.decoder = self._stack(cfg.decoder_depth)
        self.dec_norm = nn.LayerNorm(width)
        self.to_pixels = nn.Linear(width, 3 * d * d)
        self.apply(_init_weights)
        for p in (self.enc_pos_space, self.enc_pos_time, self.dec_pos_space, self.dec_pos_time):
            nn.init.trunc_normal_(p, std=0.02)

    def _stack(self, depth: int) -> nn.ModuleList:
        c = self.cfg
        return nn.ModuleList(DividedSpaceTimeBlock(c.width, c.heads, c.mlp_ratio) for _ in range(depth))

    @property
    def latent_spec(self) -> LatentSpec:
        return triplane_spec(self.latent_shape)

    def encode_planes(self, x: torch.Tensor) -> Planes:
        """(B, 3, S, H, W) in [-1, 1] -> (z_s (B,C,H',W'), z_h (B,C,S,W'), z_w (B,C,S,H')), all in [-1, 1]."""
        self._check_video(x)
        d, g = self.cfg.patch_size, self.grid
        tokens = rearrange(x, "b c s (h p) (w q) -> b s (h w) (c p q)", p=d, q=d)
        u = self.patch_embed(tokens) + self.enc_pos_space + self.enc_pos_time
        u = self.enc_norm(run_blocks(self.encoder, u, self.cfg.activation_checkpointing))
        u = rearrange(u, "b s (h w) d -> b s h w d", h=g, w=g)
        b, s = u.shape[:2]
        z_s = self.project_s(rearrange(u, "b s h w d -> (b h w) s d"))
        z_h = self.project_h(rearrange(u, "b s h w d -> (b s w) h d"))
        z_w = self.project_w(rearrange(u, "b s h w d -> (b s h) w d"))
        return (
            rearrange(z_s, "(b h w) c -> b c h w", b=b, h=g),
            rearrange(z_h, "(b s w) c -> b c s w", b=b, s=s),
            rearrange(z_w, "(b s h) c -> b c s h", b=b, s=s),
        )

    def decode_planes(self, planes: Planes) -> torch.Tensor:
        """Three planes -> video (B, 3, S, H, W) (unbounded; ~[-1, 1] once trained)."""
        z_s, z_h, z_w = planes
        s, g = self.frames, self.grid
        grid = torch.cat(  # v[b, :, s, h, w] = [z_s[h, w], z_h[s, w], z_w[s, h]]
            [
                repeat(z_s, "b c h w -> b s h w c", s=s),
                repeat(z_h, "b c s w -> b s h w c", h=g),
                repeat(z_w, "b c s h -> b s h w c", w=g),
            ],
            dim=-1,
        )
        v = (
            self.latent_embed(rearrange(grid, "b s h w c -> b s (h w) c"))
            + self.dec_pos_space
            + self.dec_pos_time
        )
        v = self.dec_norm(run_blocks(self.decoder, v, self.cfg.activation_checkpointing))
        d = self.cfg.patch_size
        return rearrange(self.to_pixels(v), "b s (h w) (c p q) -> b c s (h p) (w q)", h=g, p=d, q=d)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, H, W) -> packed latent (B, C, L) for storage and diffusion."""
        return pack_planes(self.encode_planes(video))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decode_planes(unpack_planes(latent, self.latent_shape))

    def _check_video(self, x: torch.Tensor) -> None:
        expected = (3, self.frames, self.resolution, self.resolution)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"autoencoder expects video (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
