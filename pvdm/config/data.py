"""`data`: the clip geometry every stage shares."""

from __future__ import annotations

from pydantic import Field

from pvdm.config.base import StrictModel


class DataConfig(StrictModel):
    resolution: int = Field(256, ge=8, description="clip height and width in pixels (square, centre-cropped)")
    frames: int = Field(
        16, ge=2, description="frames per clip (16 in the paper; 128 for long-video training)"
    )
