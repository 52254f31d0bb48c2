"""The image UNet both VIDM generators are built on: ADM (Dhariwal and Nichol 2021), residual blocks with adaptive
GroupNorm (FiLM from the time embedding), multi-head attention at chosen resolutions, on one frame.

    forward(x (B, C_in, H, W), t (B,), n (B,) | None) -> (B, C_out, H, W)

VIDM's additions are switches (its Table 3 ablations):
    truncation  the content generator's learnable constant, concatenated to x_t (pvdm.families.vidm.parts)
    posgn       the motion generator's positional group normalisation after every block, from (h, w, n, t)

The blocks are the triplane denoiser's, used on a single plane: the same residual block, attention (within the
one plane), down- and upsampling and layout (pvdm.models.unet, pvdm.models.unet_parts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.families.vidm.parts import PosGN, TruncationConstant, charbonnier_loss
from pvdm.models.unet import Downsample, PlaneAttention, PlaneBlock, ResBlock, Upsample, group_norm
from pvdm.models.unet_parts import ConditionEmbedding, Op, unet_layout, zero_init


class FrameUNet(nn.Module):
    def __init__(
        self,
        cfg: TriplaneUNetConfig,
        in_channels: int,
        out_channels: int,
        size: tuple[int, int],
        *,
        truncation: bool = False,
        posgn: bool = False,
        max_frames: int = 128,
        timesteps: int = 1000,
    ) -> None:
        super().__init__()
        ch = cfg.model_channels
        emb_dim = 4 * ch
        self.embed = ConditionEmbedding(ch, cfg.num_classes)
        self.truncation = TruncationConstant(in_channels, *size) if truncation else None
        self.input_conv = nn.Conv2d(in_channels * (2 if truncation else 1), ch, 3, padding=1)

        def block(cin: int, cout: int, attention: bool) -> PlaneBlock:
            attn = PlaneAttention(cout, cfg.num_heads, cfg.norm_groups) if attention else None
            return PlaneBlock(ResBlock(cin, cout, emb_dim, cfg), attn, cfg.activation_checkpointing)

        def build(op: Op) -> nn.Module:
            if op.kind == "block":
                return block(op.cin, op.cout, 2**op.level in cfg.attention_resolutions)
            return Downsample(op.cout) if op.kind == "down" else Upsample(op.cout)

        down, up, mid = unet_layout(cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks)
        self.down = nn.ModuleList(build(op) for op in down)
        self.middle = nn.ModuleList([block(mid, mid, cfg.mid_attention), block(mid, mid, False)])
        self.up = nn.ModuleList(build(op) for op in up)
        blocks = (
            [op.cout for op in down if op.kind == "block"]
            + [mid, mid]
            + [op.cout for op in up if op.kind == "block"]
        )
        self.posgn = (
            nn.ModuleList(
                PosGN(c, cfg.norm_groups, max_frames=max_frames, timesteps=timesteps) for c in blocks
            )
            if posgn
            else None
        )
        self.out = nn.Sequential(
            group_norm(up[-1].cout, cfg.norm_groups),
            nn.SiLU(),
            zero_init(nn.Conv2d(up[-1].cout, out_channels, 3, padding=1)),
        )

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        n: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        n = torch.zeros_like(t) if n is None else n
        emb = [self.embed(t, label)]
        h = [self.input_conv(self.truncation(x) if self.truncation is not None else x)]
        norms = iter(self.posgn) if self.posgn is not None else None

        def after_block(planes: list[torch.Tensor]) -> list[torch.Tensor]:
            return [next(norms)(planes[0], n, t)] if norms is not None else planes

        skips = [h]
        for module in self.down:
            h = after_block(module(h, emb)) if isinstance(module, PlaneBlock) else module(h)
            skips.append(h)
        for module in self.middle:
            h = after_block(module(h, emb))
        for module in self.up:
            if isinstance(module, Upsample):
                h = module(h, like=skips[-1])
            else:
                h = after_block(module([torch.cat([h[0], skips.pop()[0]], dim=1)], emb))
        return self.out(h[0])


def denoising_loss(pred: torch.Tensor, noise: torch.Tensor, robust: bool) -> torch.Tensor:
    """VIDM's robustness penalty (Charbonnier, eq. 4) when `robust`, else DDPM's squared error."""
    return charbonnier_loss(pred, noise) if robust else F.mse_loss(pred, noise)
