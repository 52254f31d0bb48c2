"""PatchGAN discriminators for the autoencoder's optional GAN phase (as in the official PVDM code).

A 2D PatchGAN scores one frame, a 3D PatchGAN the whole clip. Both return their intermediate feature maps so the
generator can be trained with feature matching. GroupNorm instead of BatchNorm: per-worker batches are tiny.
GroupNorm also normalises each sample on its own, so scoring a concatenated batch equals scoring its parts.

Callers go through `VideoDiscriminator.forward`, never `.frame` / `.clip`: under DistributedDataParallel
only the wrapper's forward syncs the gradients (and the wrapper has no `.frame` attribute at all).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels)


def _conv(dims: int, cin: int, cout: int, stride: int) -> nn.Module:
    """4x4 spatial kernels as in pix2pix; in 3D the time kernel is 3 with padding 1, so clips of any length
    (even 4 frames) survive the downsampling (time: T -> ceil(T / 2) per strided layer)."""
    if dims == 2:
        return nn.Conv2d(cin, cout, 4, stride, 1)
    return nn.Conv3d(cin, cout, (3, 4, 4), (stride, stride, stride), (1, 1, 1))


class PatchDiscriminator(nn.Module):
    """N-layer PatchGAN (pix2pix) in 2D or 3D: stride-2 convs, then two stride-1 convs to one logit per patch."""

    def __init__(self, dims: int, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(_conv(dims, 3, channels, 2), nn.LeakyReLU(0.2))]
        ch = channels
        for i in range(1, layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(nn.Sequential(_conv(dims, ch, out, stride), _norm(out), nn.LeakyReLU(0.2)))
            ch = out
        final = nn.Conv2d if dims == 2 else nn.Conv3d
        blocks.append(final(ch, 1, 3, 1, 1))  # 3x3 keeps small inputs (16-32 px) from shrinking to nothing
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for block in self.blocks[:-1]:
            x = block(x)
            features.append(x)
        return self.blocks[-1](x), features


class DiscriminatorOutput(NamedTuple):
    """Both critics' patch logits and feature maps for a batch of B clips."""

    frame_logits: torch.Tensor  # (B, 1, h, w)
    clip_logits: torch.Tensor  # (B, 1, s, h, w)
    frame_features: list[torch.Tensor]  # (B, C_i, h_i, w_i) per layer
    clip_features: list[torch.Tensor]  # (B, C_i, s_i, h_i, w_i) per layer

    @property
    def logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.frame_logits, self.clip_logits

    @property
    def features(self) -> list[torch.Tensor]:
        """The 2D critic's feature maps, then the 3D critic's (the order feature matching pairs them in)."""
        return self.frame_features + self.clip_features


class VideoDiscriminator(nn.Module):
    """The pair used by the GAN phase: `frame` scores (B, 3, H, W), `clip` scores (B, 3, S, H, W)."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.frame = PatchDiscriminator(2, channels, layers)
        self.clip = PatchDiscriminator(3, channels, layers)

    def forward(self, frames: torch.Tensor, clip: torch.Tensor) -> DiscriminatorOutput:
        """frames (B, 3, H, W) picked from the clips, clip (B, 3, S, H, W) -> both critics' scores."""
        frame_logits, frame_features = self.frame(frames)
        clip_logits, clip_features = self.clip(clip)
        return DiscriminatorOutput(frame_logits, clip_logits, frame_features, clip_features)
