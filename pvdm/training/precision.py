"""Gradient clipping shared by the training steps (device and autocast live in pvdm.device)."""

from __future__ import annotations

import torch


def clip_gradients(parameters, max_norm: float) -> float:
    """Clip the global grad norm (0 disables) and return the norm before clipping, for logging."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    if max_norm <= 0:
        return float(torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
