"""Checks that stop training loudly instead of silently corrupting the weights."""

from __future__ import annotations

import torch


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the optimizer step was not taken, so the last checkpoint stays good."""


def ensure_finite(loss: torch.Tensor, step: int, name: str = "loss") -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"{name} is {loss.item()} at step {step}: stopping before the optimizer step; "
            "the last checkpoint is intact (lower the learning rate or use fp32 to investigate)"
        )
