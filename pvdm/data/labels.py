"""Class labels of raw videos (`preprocess.labels`): none, the class folder, or a class-index file.

    folder: a video's class is the nearest parent folder that is not a split folder (`train/`, `val/`, `test/`...),
            so UCF-101 (`ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`) and split layouts
            (`train/ApplyEyeMakeup/...`) both work; names are sorted, label i = names[i].
    file:   the same folder names, numbered by a class-index file inside the raw folder (`preprocess.class_file`,
            UCF-101's `classInd.txt`: `<index> <name>` per line, or one name per line); folders the file does not
            name are unlabelled.
A video with no class folder is unlabelled (-1): a class-conditional model trains on it as the null class.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pvdm.data.layout import UNLABELLED
from pvdm.data.sources import TEST_FOLDERS, TRAIN_FOLDERS, confined

SPLIT_FOLDERS = {*TRAIN_FOLDERS, *TEST_FOLDERS}


class LabelError(ValueError):
    """The class-index file is missing, outside the raw folder, or malformed (the message names file and line)."""


def class_folder(source: str) -> str | None:
    """The nearest parent folder of a raw-relative path that is not a split folder, or None."""
    for part in reversed(PurePosixPath(source).parts[:-1]):
        if part.lower() not in SPLIT_FOLDERS:
            return part
    return None


def read_class_index(path: Path) -> list[str]:
    """Class names in index order from `<index> <name>` lines (any start, e.g. UCF-101's 1-based) or bare names."""
    entries: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) == 1:
            entries.append((len(entries), words[0]))
        elif len(words) == 2 and words[0].lstrip("-").isdigit():
            entries.append((int(words[0]), words[1]))
        else:
            raise LabelError(f"{path}:{number}: expected '<index> <name>' or '<name>', got {line.strip()!r}")
    names = [name for _, name in sorted(entries)]
    if len(set(names)) != len(names):
        raise LabelError(f"{path}: a class name appears twice")
    return names


def class_file_path(raw: Path, class_file: str, allow_outside: bool = False) -> Path:
    """The class-index file, inside the raw folder unless preprocess.allow_outside_paths says otherwise."""
    try:
        return confined(raw, class_file, "preprocess.class_file", allow_outside)
    except FileNotFoundError as err:
        raise LabelError(str(err)) from None


def assign_labels(
    sources: list[str], mode: str, raw: Path, class_file: str | None = None, allow_outside: bool = False
) -> tuple[list[str], dict[str, int]]:
    """(class names, label of every source: an index into names or -1)."""
    if mode == "none":
        return [], dict.fromkeys(sources, UNLABELLED)
    folders = {s: class_folder(s) for s in sources}
    if mode == "folder":
        names = sorted({f for f in folders.values() if f is not None})
    else:
        if not class_file:
            raise LabelError("preprocess.labels is 'file' but preprocess.class_file is not set")
        names = read_class_index(class_file_path(raw, class_file, allow_outside))
    index = {name: i for i, name in enumerate(names)}
    return names, {s: index.get(f, UNLABELLED) if f is not None else UNLABELLED for s, f in folders.items()}
