"""Error types the stage scripts report as one line, in a module of their own: naming them loads no torch and no
pandas (the preprocess stage needs no torch, and starts its validation process before it imports pandas)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pvdm.data.report import PreprocessReport


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not hold what it should."""


class PreprocessError(RuntimeError):
    """The preprocess stage failed; the report (also written to the store) says what was rejected and why."""

    def __init__(self, message: str, report: PreprocessReport) -> None:
        super().__init__(message)
        self.report = report
