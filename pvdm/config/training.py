"""Optimisation settings shared by the two training stages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pvdm.config.base import StrictModel


class TrainConfig(StrictModel):
    steps: int = Field(
        1000, ge=1, le=10**9, description="optimizer steps in total (resume continues up to this count)"
    )
    batch_size: int = Field(
        4, ge=1, le=65536, description="clips per optimizer step, summed over all workers"
    )
    lr: float = Field(1e-4, gt=0, le=1.0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="after warm-up: constant, or a cosine decay to final_lr_fraction * lr at the last step",
    )
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up from 0 over this many steps")
    final_lr_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="the cosine schedule's end, relative to lr"
    )
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    loader_workers: int = Field(0, ge=0, description="DataLoader worker processes per training worker")
