"""`diffusion` section (being written for issue 2)."""

from __future__ import annotations

from pvdm.config.base import StrictModel


class DiffusionConfig(StrictModel):
    pass
