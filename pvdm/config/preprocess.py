"""`preprocess` section (being written for issue 3)."""

from __future__ import annotations

from pvdm.config.base import StrictModel


class PreprocessConfig(StrictModel):
    pass
