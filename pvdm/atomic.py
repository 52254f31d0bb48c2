"""Writing one file atomically: a reader, or a run killed at any moment, sees the old file or the new one, never
half of one.

The new content goes to a temporary file beside the target, `.<name>.<random>.partial` (hidden: preprocess, the
checkpoint listing and the ingest state pass over it), is fsynced, renamed over the target (os.replace) and the
folder fsynced, so a power cut cannot lose the rename either. `durable=False` skips the two fsyncs where losing a
write to a power cut only costs a redo (clip shards: the fsyncs took a large part of preprocessing).

Swapping a whole folder (a latent store, a task's outputs) is another mechanism: see pvdm.data.latents.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """A new empty temporary file beside `path` for the block to write (by name: copies, downloads, to_parquet);
    renamed over `path` when the block ends, deleted when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


@contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file open for writing `path`'s new content (torch.save, np.save, ...); see atomic_path."""
    with atomic_path(path, durable=durable) as tmp, tmp.open("wb") as f:
        yield f


def write_text_atomic(path: str | Path, text: str, *, durable: bool = True) -> None:
    """`text` as UTF-8 in `path`, written atomically."""
    with atomic_write(path, durable=durable) as f:
        f.write(text.encode("utf-8"))


def remove_partial(path: str | Path) -> None:
    """Delete the temporary files of unfinished writes of `path` (a writer that was abandoned mid-write)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        tmp.unlink(missing_ok=True)


def _new_temp_file(path: Path) -> Path:
    """Created exclusively (two writers never share one), with the permissions a plain open would give."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
