"""The families' error type, in a module of its own: stage scripts name it without loading any model code."""


class FamilyError(ValueError):
    """A model or checkpoint does not belong where it is used (wrong role, unknown family, other latents)."""
