"""`evaluate` section (being written for issue 5)."""

from __future__ import annotations

from pvdm.config.base import StrictModel


class EvaluateConfig(StrictModel):
    pass
