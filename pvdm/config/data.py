"""`data`: the clip geometry every stage shares."""

from __future__ import annotations

from pydantic import Field

from pvdm.config.base import StrictModel


class DataConfig(StrictModel):
    resolution: int = Field(
        256, ge=8, le=4096, description="clip height and width in pixels (square, centre-cropped)"
    )
    frames: int = Field(
        16, ge=2, le=4096, description="frames per clip (16 in the paper; 128 for long-video training)"
    )

    def clip_bytes(self, dtype_bytes: int = 4) -> int:
        """Memory of one clip as a tensor (float32 by default)."""
        return self.frames * self.resolution**2 * 3 * dtype_bytes
