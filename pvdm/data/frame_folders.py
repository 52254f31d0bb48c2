"""Videos stored as folders of numbered frames: SkyTimelapse and the StyleGAN-V / DIGAN layout ship each video as a
folder of png or jpg files (`sky_train/<video>/<clip>/<frame>.jpg`).

A folder is such a video when at least two image files lie directly in it; its frames are those files in natural
order (frame_2 before frame_10), at a frame rate the user states (`preprocess.frame_folder_fps`: image files carry
none). Frames are read one at a time with Pillow, and each image's size is checked from its header before its pixels
are decoded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from pvdm.data.video import DecodeLimits, FramesAt, VideoError
from pvdm.hashing import sha256_file

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MIN_FRAMES = 2  # a single image in a folder is a still, not a video
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> list[object]:
    """Sort key that orders the numbers inside names by value: frame_2.png < frame_10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (regular files, not links), in natural order."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    images = [
        p for p in entries if p.suffix.lower() in FRAME_EXTENSIONS and p.is_file() and not p.is_symlink()
    ]
    return sorted(images, key=lambda p: natural_key(p.name))


def is_frame_folder(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and len(frame_files(folder)) >= MIN_FRAMES


def frame_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise VideoError(f"frame {path.name} cannot be read ({err})") from None


def load_frame(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB of one frame, resized (bicubic) to `size` = (width, height) when given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if size is not None and rgb.size != tuple(size):
                rgb = rgb.resize(size, Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise VideoError(f"frame {path.name} cannot be read ({err})") from None


def read_frame_folder(folder: Path, max_frames: int | None = None) -> np.ndarray:
    """The frames of a frame-folder video at the first frame's size: uint8 (T, H, W, 3)."""
    files = frame_files(folder)[:max_frames]
    if len(files) < 1:
        raise VideoError(f"{folder}: no image files ({', '.join(FRAME_EXTENSIONS)})")
    size = frame_size(files[0])
    return np.stack([load_frame(f, size) for f in files])


def bounded_frames(files: list[Path], size: tuple[int, int], limits: DecodeLimits) -> FramesAt:
    """The frames by index, resized to `size` = (width, height); each image's size is checked against
    `limits.max_pixels` from its header before its pixels are decoded."""

    def frames_at(indices: list[int]) -> np.ndarray:
        for i in indices:
            limits.check_pixels(*frame_size(files[i]))
        return np.stack([load_frame(files[i], size) for i in indices])

    return frames_at


def folder_digest(folder: Path) -> str:
    """SHA-256 over the frame names and contents, in frame order: the folder's content hash."""
    digest = hashlib.sha256()
    for path in frame_files(folder):
        digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def folder_size_and_mtime(folder: Path) -> tuple[int, int]:
    """Total bytes of the frames and the newest modification time (of the folder or a frame), for the hash cache."""
    files = frame_files(folder)
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max([folder.stat().st_mtime_ns, *(s.st_mtime_ns for s in stats)])
