"""The raw folder: which files are candidate videos, which are junk before any decoding, duplicates, and splits.

Everything here is cheap (file system calls, hashing) and runs in the main process; decoding is in pvdm.data.video
(cutting into clips in pvdm.data.cutting).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pvdm.atomic import write_text_atomic
from pvdm.data.frame_folders import folder_digest, folder_size_and_mtime, is_frame_folder
from pvdm.hashing import sha256_file

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Candidate:
    """A regular, readable, non-empty file with a video extension, or a folder of frames: worth hashing and
    decoding."""

    path: Path
    source: str  # relative to the raw folder, POSIX separators
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Rejection:
    source: str
    reason: str


@dataclass
class Listing:
    candidates: list[Candidate]
    rejected: list[Rejection]  # video-named entries that are not usable files
    ignored: list[Rejection]  # files without a video extension


def list_raw(raw_dir: Path, extensions: list[str]) -> Listing:
    """Walk `raw_dir` (following no directory links) and sort every entry into candidates, rejected or ignored.

    A folder holding two or more image files is a video of numbered frames (pvdm.data.frame_folders): a candidate
    itself, not walked into."""
    listing = Listing([], [], [])
    for dirpath, dirnames, filenames in os.walk(raw_dir):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            source = path.relative_to(raw_dir).as_posix()
            is_video_name = path.suffix.lower() in extensions
            if name in dirnames and not is_video_name:
                if is_frame_folder(path):
                    dirnames.remove(name)
                    size, mtime_ns = folder_size_and_mtime(path)
                    listing.candidates.append(Candidate(path, source, size, mtime_ns))
                continue  # an ordinary folder: os.walk descends into it
            if not is_video_name:
                listing.ignored.append(Rejection(source, "not a video file extension"))
                continue
            reason = unusable_reason(path)
            if reason:
                listing.rejected.append(Rejection(source, reason))
            else:
                st = path.stat()
                listing.candidates.append(Candidate(path, source, st.st_size, st.st_mtime_ns))
    listing.candidates.sort(key=lambda c: c.source)
    return listing


def unusable_reason(path: Path) -> str | None:
    """Why a video-named entry cannot be a video, in words; None when it is worth decoding."""
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return "a directory, not a video file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device, pipe or socket)"
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if not head:
        return "empty file (0 bytes)"
    if _looks_like_text(head):
        preview = head[:40].decode("utf-8", errors="replace").splitlines()[0]
        return f"a text file, not a video (it starts with {preview!r})"
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text)


class HashCache:
    """sha256 of each file, recomputed only when its size or modification time changed (incremental reruns)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self._entries = {}

    def digest(self, c: Candidate) -> str:
        entry = self._entries.get(c.source)
        if entry and entry[0] == c.size and entry[1] == c.mtime_ns:
            return entry[2]
        digest = folder_digest(c.path) if c.path.is_dir() else sha256_file(c.path)
        self._entries[c.source] = [c.size, c.mtime_ns, digest]
        return digest

    def save(self, keep: set[str]) -> None:
        entries = {k: v for k, v in self._entries.items() if k in keep}
        write_text_atomic(self.path, json.dumps(entries, sort_keys=True))


def read_video_list(path: Path) -> set[str]:
    """Paths named in a split list: the first word of each non-empty line, lower-cased (UCF-101's lists differ in
    case from its folders), without a leading './'."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.strip().split()
        if words and not words[0].startswith("#"):
            names.add(words[0].removeprefix("./").lower())
    return names


TRAIN_FOLDERS, TEST_FOLDERS = ("train", "training"), ("val", "valid", "validation", "test", "testing")


def folder_split(source: str) -> str | None:
    """The split a dataset's own folders give a raw-relative path (SkyTimelapse's train/ and test/, StyleGAN-V's
    train/ and val/): the first split-named folder on its path, or None."""
    for part in source.split("/")[:-1]:
        if part.lower() in TRAIN_FOLDERS:
            return "train"
        if part.lower() in TEST_FOLDERS:
            return "test"
    return None


def confined(raw: Path, path: str, key: str, allow_outside: bool) -> Path:
    """A file a params value names, resolved inside the raw folder; outside it only with the explicit flag
    (preprocess.allow_outside_paths), so a value cannot make the stage read /proc/self/environ or ~/.aws."""
    resolved = (raw / path).resolve()  # an absolute `path` stays itself
    if not allow_outside and not resolved.is_relative_to(raw.resolve()):
        raise FileNotFoundError(
            f"{key}: {path!r} is outside the raw folder {raw}; put it there, or set "
            "preprocess.allow_outside_paths: true to read it anyway"
        )
    if not resolved.is_file():
        raise FileNotFoundError(f"{key}: {resolved} does not exist")
    return resolved


def seeded_split(content_hashes: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Split videos by a hash of (seed, content): a video keeps its split when others are added or removed.

    With test_fraction > 0 and at least two videos, both splits get at least one video.
    """
    scores = {h: _unit_score(seed, h) for h in content_hashes}
    split = {h: "test" if s < test_fraction else "train" for h, s in scores.items()}
    if test_fraction > 0 and len(split) >= 2:
        ranked = sorted(scores, key=scores.__getitem__)
        if "test" not in split.values():
            split[ranked[0]] = "test"
        if "train" not in split.values():
            split[ranked[-1]] = "train"
    return split


def _unit_score(seed: int, content_hash: str) -> float:
    digest = hashlib.sha256(f"{seed}:{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def listed_split(
    sources: list[str], test_names: set[str] | None, train_names: set[str] | None
) -> tuple[dict[str, str], list[Rejection]]:
    """Split from explicit lists: listed test -> test, listed train -> train; with one list, the rest go to the other
    split; with both, unlisted videos (and videos in both lists) are excluded and reported."""
    split, excluded = {}, []
    for source in sources:
        key = source.lower()
        in_test = test_names is not None and key in test_names
        in_train = train_names is not None and key in train_names
        if in_test and in_train:
            excluded.append(Rejection(source, "listed in both the train and the test list"))
        elif in_test or (train_names is not None and test_names is None and not in_train):
            split[source] = "test"
        elif in_train or train_names is None:
            split[source] = "train"
        else:
            excluded.append(Rejection(source, "in neither the train nor the test list"))
    return split, excluded
