"""Error types the stage scripts report as one line, in a module of their own: naming them loads no torch (the
preprocess stage needs none, and importing it costs seconds on every run)."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not hold what it should."""
