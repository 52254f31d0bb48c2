"""Optimisation settings shared by the two training stages, and where their initial weights come from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pvdm.config.base import StrictModel, inside_project

NO_INIT = "none"
CHAMPION = "champion"  # the registry's alias (resolved by the stage scripts, never by pvdm)


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
    init_from: str = Field(
        NO_INIT,
        min_length=1,
        description="the initial weights: none (random), champion (the model registry's champion: `steps` are "
        "then fine-tuning steps), or a checkpoint of this model, a path relative to the project. Model and EMA "
        "weights only (the optimizer and the step start afresh); a run killed half-way resumes from its own "
        "checkpoint, not from these",
    )
    allow_outside_project: bool = Field(
        False, description="let `init_from` name a checkpoint outside the project folder"
    )
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    loader_workers: int = Field(0, ge=0, description="DataLoader worker processes per training worker")

    @model_validator(mode="after")
    def _init_path_stays_inside(self) -> TrainConfig:
        if self.init_path_value is not None and not self.allow_outside_project:
            path = Path(self.init_from)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(
                    f"init_from {self.init_from!r} leaves the project folder; give a path inside it, or set "
                    "allow_outside_project: true"
                )
        return self

    @property
    def init_path_value(self) -> str | None:
        """The checkpoint path `init_from` names, None for `none` and `champion`."""
        return None if self.init_from in (NO_INIT, CHAMPION) else self.init_from

    def init_path(self, root: Path, key: str = "train.init_from") -> Path | None:
        """The checkpoint `init_from` names, resolved against the project `root` (a symbolic link that leads out
        is refused like a path that does), None for `none` and `champion`."""
        if self.init_path_value is None:
            return None
        flag = "allow_outside_project beside it"
        return inside_project(root, self.init_path_value, key, flag, self.allow_outside_project)
