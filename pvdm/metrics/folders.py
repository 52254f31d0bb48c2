"""Clips from folders of videos (files in any codec decord or PyAV reads, or folders of numbered frames as
SkyTimelapse ships them), for `pvdm fvd REAL FAKE`: real videos by the window rule (`folder_windows`), generated
ones from their first frames (`folder_clips`)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pvdm.data.frame_folders import (
    FRAME_EXTENSIONS,
    folder_digest,
    frame_files,
    is_frame_folder,
    read_frame_folder,
)
from pvdm.data.video import VIDEO_EXTENSIONS, VideoError, probe, read_video
from pvdm.hashing import sha256_file
from pvdm.metrics.windows import window_plan

log = logging.getLogger(__name__)


def list_videos(folder: str | Path) -> list[Path]:
    """Videos under `folder` (recursively): video files, and folders of two or more image frames (not walked
    into), in a stable sorted order; an error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    videos = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if here != folder and is_frame_folder(here):
            videos.append(here)
            dirnames.clear()
            continue
        videos += [here / f for f in filenames if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
    if not videos:
        raise FileNotFoundError(
            f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)}) and no folders of frames "
            f"({', '.join(FRAME_EXTENSIONS)})"
        )
    return sorted(videos)


def _read(path: Path, max_frames: int | None = None) -> np.ndarray:
    return read_frame_folder(path, max_frames) if path.is_dir() else read_video(path, max_frames=max_frames)


def folder_clips(folder: str | Path, frames: int, num: int) -> Iterator[np.ndarray]:
    """Up to `num` uint8 clips (frames, H, W, 3) of consecutive frames, taken round-robin over the videos.

    Pass k takes frames [k * frames, (k + 1) * frames) of every video still long enough, so a folder of
    generated 16-frame videos gives one clip per video and a few long real videos give many. Deterministic.
    """
    videos, produced, k = list_videos(folder), 0, 0
    while videos and produced < num:
        long_enough = []
        for path in videos:
            clip = _clip(path, k, frames)
            if clip is None:
                continue
            long_enough.append(path)
            yield clip
            produced += 1
            if produced >= num:
                return
        videos, k = long_enough, k + 1


def video_lengths(videos: list[Path]) -> list[int]:
    """Frames of each video: the container's count, or (when it does not say) the decoded count; 0 unreadable."""
    lengths = []
    for path in videos:
        try:
            count = len(frame_files(path)) if path.is_dir() else probe(path).frames or len(read_video(path))
        except VideoError as err:
            log.warning("skipping %s: %s", path, err)
            count = 0
        lengths.append(count)
    return lengths


def folder_windows(folder: str | Path, frames: int, num: int, seed: int) -> Iterator[np.ndarray]:
    """Up to `num` real clips by the StyleGAN-V rule (pvdm.metrics.windows): the videos shuffled with `seed`,
    one random window of `frames` consecutive frames each, more per video only when there are too few videos."""
    videos = list_videos(folder)
    for v, start in window_plan(video_lengths(videos), frames, num, seed):
        try:
            video = _read(videos[v], max_frames=start + frames)
        except VideoError as err:
            log.warning("skipping %s: %s", videos[v], err)
            continue
        if len(video) >= start + frames:  # a container may claim more frames than decode
            yield video[start : start + frames]


def _clip(path: Path, index: int, frames: int) -> np.ndarray | None:
    """Clip `index` of a video, or None when the video is too short or unreadable (logged)."""
    try:
        video = _read(path, max_frames=(index + 1) * frames)
    except VideoError as err:
        log.warning("skipping %s: %s", path, err)
        return None
    if len(video) < (index + 1) * frames:
        if index == 0:
            log.warning("skipping %s: %d frames, fewer than %d", path, len(video), frames)
        return None
    return video[index * frames : (index + 1) * frames]


def folder_hash(folder: str | Path) -> str:
    """SHA-256 over the relative paths and contents of the folder's videos: the key of its cached statistics."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in list_videos(folder):
        content = folder_digest(path) if path.is_dir() else sha256_file(path)
        digest.update(f"{path.relative_to(folder).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()
