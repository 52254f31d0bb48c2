"""Building blocks of VIDM (Mei and Patel, AAAI 2023; ../shared/papers/vidm-paper.txt): the parts its two
generators add to an image diffusion UNet.

    charbonnier_loss    the robustness penalty: sqrt((eps_hat - eps)^2 + eta^2) instead of the squared error
                        (eq. 4, eta = 1e-8 in the paper)
    TruncationConstant  sampling-space truncation: a learnable constant with the shape of x_t, concatenated to
                        x_t at every denoising step; trained with the network, fixed at inference (eq. 3)
    PosGN               positional group normalisation: alpha * GroupNorm(x) + beta, with (alpha, beta) from an
                        MLP of the 4D coordinates (h, w, n, t), sine-activated after its first layer (eq. 5-6);
                        the (h, w) grids are built once per feature size and cached
    SpyNet              the optical-flow network of the implicit motion condition (Ranjan and Black 2017): a
                        coarse-to-fine pyramid where each level's small conv net refines the flow that warps the
                        second frame onto the first; defined here and trained with the motion generator (no
                        download)

Choices the paper leaves open, and where they come from: PosGN's MLP has one hidden layer (width in config) with
sin(30 * (W x + b)) after the first layer and the first layer initialised uniform(-1/4, 1/4), as SIREN (Sitzmann
et al. 2020) does; its last layer is zero-initialised around alpha = 1, beta = 0, so a fresh PosGN is a plain
GroupNorm (training starts from the baseline network). Coordinates are h, w in [-1, 1] across the feature map, n
as the frame index over the longest video the model is built for, t as the timestep over the schedule's length.
SpyNet follows the original's five conv layers per level (7x7 kernels, widths 32-64-32-16-2, both configurable)
and gives flow in pixels; its activations are LeakyReLU(0.1), not ReLU: trained from scratch without flow labels
(the original was trained with them), its ReLU units died within a few hundred steps in our tests and the flow
stopped depending on the frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIREN_OMEGA = 30.0


def charbonnier_loss(prediction: torch.Tensor, target: torch.Tensor, eta: float = 1e-8) -> torch.Tensor:
    """Mean of sqrt((prediction - target)^2 + eta^2): the robustness penalty of VIDM's eq. 4 (near L1 for small
    eta, so large errors weigh linearly rather than quadratically)."""
    return torch.sqrt((prediction - target) ** 2 + eta**2).mean()


class TruncationConstant(nn.Module):
    """A learnable tensor c with the shape of one x_t, concatenated to x_t on channels: the network sees
    [x_t, c] at every step. Training updates c with the network; at inference it is whatever training left, the
    same at every step and every sample (no randomness enters through it)."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.constant = nn.Parameter(torch.randn(channels, height, width) * 0.02)

    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        c = self.constant.to(x_t.dtype).expand(x_t.shape[0], -1, -1, -1)
        return torch.cat([x_t, c], dim=1)


class PosGN(nn.Module):
    """alpha(h, w, n, t) * GroupNorm(x) + beta(h, w, n, t), per pixel and channel (VIDM's eq. 5-6)."""

    def __init__(
        self, channels: int, groups: int, hidden: int = 32, max_frames: int = 128, timesteps: int = 1000
    ):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels, affine=False)
        self.first = nn.Linear(4, hidden)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2 * channels)
        self.max_frames, self.timesteps = max_frames, timesteps
        with torch.no_grad():
            self.first.weight.uniform_(-1 / 4, 1 / 4)  # SIREN's first-layer init for 4 inputs
            self.out.weight.zero_()
            self.out.bias.zero_()  # alpha = 1 + 0, beta = 0: a fresh PosGN is a plain GroupNorm
        self._grids: dict[tuple[int, int, str], torch.Tensor] = {}

    def grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(H, W, 2) coordinates in [-1, 1], built once per size and device."""
        key = (height, width, str(device))
        if key not in self._grids:
            hs = torch.linspace(-1, 1, height, device=device) if height > 1 else torch.zeros(1, device=device)
            ws = torch.linspace(-1, 1, width, device=device) if width > 1 else torch.zeros(1, device=device)
            self._grids[key] = torch.stack(torch.meshgrid(hs, ws, indexing="ij"), dim=-1)
        return self._grids[key]

    def modulation(
        self, height: int, width: int, n: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, beta), each (B, C, H, W), for frame indices n (B,) and timesteps t (B,)."""
        b = n.shape[0]
        hw = self.grid(height, width, n.device).expand(b, -1, -1, -1)
        nt = torch.stack([n.float() / self.max_frames, t.float() / self.timesteps], dim=-1) * 2 - 1
        coords = torch.cat([hw, nt[:, None, None, :].expand(-1, height, width, -1)], dim=-1)
        h = torch.sin(SIREN_OMEGA * self.first(coords))
        h = self.out(F.silu(self.hidden(h)))  # (B, H, W, 2C)
        scale, shift = h.permute(0, 3, 1, 2).chunk(2, dim=1)
        return 1 + scale, shift

    def forward(self, x: torch.Tensor, n: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.modulation(x.shape[-2], x.shape[-1], n, t)
        return alpha * self.norm(x) + beta


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: output(p) = image(p + flow(p)), flow (B, 2, H, W) in pixels (x then y), bilinear, border."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=image.dtype),
        torch.arange(w, device=image.device, dtype=image.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class _SpyLevel(nn.Module):
    """One pyramid level: [first, warped second, flow] (8 channels for RGB) -> a flow residual."""

    def __init__(self, channels: int, widths: list[int], kernel: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 2 * channels + 2
        for i, cout in enumerate([*widths, 2]):
            layers.append(nn.Conv2d(cin, cout, kernel, padding=kernel // 2))
            if i < len(widths):
                layers.append(nn.LeakyReLU(0.1))
            cin = cout
        self.net = nn.Sequential(*layers)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)  # a fresh level adds no flow

    def forward(self, first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow + self.net(torch.cat([first, warp(second, flow), flow], dim=1))


class SpyNet(nn.Module):
    """Coarse-to-fine optical flow (Ranjan and Black 2017): flow (B, 2, H, W) in pixels such that
    warp(second, flow) matches first. Frames are downsampled `levels - 1` times by 2; each level upsamples the
    coarser flow (doubling it) and adds its residual."""

    def __init__(
        self, channels: int = 3, levels: int = 4, widths: list[int] | None = None, kernel: int = 7
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            _SpyLevel(channels, widths or [32, 64, 32, 16], kernel) for _ in range(levels)
        )

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        pyramid = [
            (first, second)
        ]  # finest first; level i works at 1 / 2**i of the size (small frames: fewer)
        while len(pyramid) < len(self.levels) and min(pyramid[-1][0].shape[-2:]) >= 8:
            a, b = pyramid[-1]
            pyramid.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))
        a, b = pyramid[-1]
        flow = torch.zeros(a.shape[0], 2, *a.shape[-2:], device=a.device, dtype=a.dtype)
        for i in reversed(range(len(pyramid))):
            level, (a, b) = self.levels[i], pyramid[i]
            if flow.shape[-2:] != a.shape[-2:]:
                scale = torch.tensor(
                    [a.shape[-1] / flow.shape[-1], a.shape[-2] / flow.shape[-2]], device=a.device
                )
                flow = F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=True)
                flow = flow * scale.to(flow.dtype)[None, :, None, None]
            flow = level(a, b, flow)
        return flow
