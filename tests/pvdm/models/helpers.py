"""Shared by the model tests."""

from __future__ import annotations

import torch
from torch import nn


def randomized(model: nn.Module) -> nn.Module:
    """Give every weight (the zero-initialised ones too) a random value, so every path carries signal."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()
