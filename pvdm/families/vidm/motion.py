"""VIDM's motion generator: the denoiser of frame n given the first frame and the latest one (paper sections
"Motion Generator", "Implicit Motion Condition" and "Adaptive Feature Residual").

    forward(x_t (B, C, H, W), t (B,), n (B,), first (B, C, H, W), latest (B, C, H, W)) -> eps (B, C, H, W)

    implicit condition   z = SpyNet(first, latest): a flow-like latent between the first frame and frame n - 1,
                         computed inside the forward, so the diffusion loss trains SpyNet jointly (as the paper says)
    PosGN                after every block of the motion network, from (h, w, n, t)
    feature residual     an encoder with the diffusion network's architecture, conditioned on the first frame and t,
                         predicts a base; the motion network, which also sees the latest frame and z, learns the
                         residual over it: eps = base(x_t, first, t) + residual(x_t, first, latest, z, t, n)

Each of the three is a switch (`implicit_condition`, `posgn`, `feature_residual`), so the paper's Table 3 ablations
can be rerun; switched off, the condition is zeros, PosGN a plain pass-through and the base absent.
"""

from __future__ import annotations

import torch
from torch import nn

from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.families.vidm.frame_unet import FrameUNet
from pvdm.families.vidm.parts import SpyNet

FLOW_CHANNELS = 2


class MotionGenerator(nn.Module):
    def __init__(
        self,
        cfg: TriplaneUNetConfig,
        channels: int,
        size: tuple[int, int],
        *,
        implicit_condition: bool = True,
        posgn: bool = True,
        feature_residual: bool = True,
        flow_levels: int = 3,
        flow_widths: list[int] | None = None,
        flow_kernel: int = 5,
        max_frames: int = 128,
        timesteps: int = 1000,
    ) -> None:
        super().__init__()
        self.flow = (
            SpyNet(channels, flow_levels, flow_widths or [16, 32, 16], kernel=flow_kernel)
            if implicit_condition
            else None
        )
        inputs = 3 * channels + FLOW_CHANNELS  # x_t, first, latest, z
        self.motion = FrameUNet(
            cfg, inputs, channels, size, posgn=posgn, max_frames=max_frames, timesteps=timesteps
        )
        self.base = FrameUNet(cfg, 2 * channels, channels, size) if feature_residual else None

    def condition(self, first: torch.Tensor, latest: torch.Tensor) -> torch.Tensor:
        """The implicit motion condition z (B, 2, H, W): SpyNet's flow from the first frame to the latest."""
        if self.flow is None:
            return first.new_zeros(first.shape[0], FLOW_CHANNELS, *first.shape[-2:])
        return self.flow(first, latest)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        n: torch.Tensor,
        first: torch.Tensor,
        latest: torch.Tensor,
        z: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z: the condition when already computed (sampling computes it once per frame, not once per step);
        label (B,) class ids for a class-conditional model (None: the null class)."""
        z = self.condition(first, latest) if z is None else z
        eps = self.motion(torch.cat([x_t, first, latest, z], dim=1), t, n, label)
        if self.base is not None:
            eps = eps + self.base(torch.cat([x_t, first], dim=1), t, None, label)
        return eps
