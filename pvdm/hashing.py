"""Content hashes of files, read in chunks (a video or a checkpoint is never held whole in memory)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file's bytes by `algorithm` ("sha256", "md5", ...: a name hashlib.new takes)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")
