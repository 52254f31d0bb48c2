"""One source video -> one shard of clips. Runs in a worker process, one video at a time.

The frames come from pvdm.data.video (`with_frames`: decord, else PyAV, bounded by `DecodeLimits`) already resized
(short side = resolution, by the decoder's scaler); here they are centre-cropped and written into the shard clip
by clip, in clip order, so memory holds about one clip, not the whole video. The shard format: `<shard>.npy`
holds the clips, uint8 (N, T, H, W, 3); `<shard>.json`, the SourceRecord, written after it, commits it.
`within_deadline` abandons a decoder that hangs and commits the rejection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pvdm.atomic import atomic_path, remove_partial, write_text_atomic
from pvdm.data.frame_folders import bounded_frames, frame_files, frame_size
from pvdm.data.video import (
    DecodeLimits,
    FramesAt,
    OpenedVideo,
    VideoError,
    VideoInfo,
    checked_batch,
    decode_size,
    probe,
    run_with_deadline,
    with_frames,
)

VFR_SPREAD = 1.5  # longest / shortest frame interval above which a video counts as variable frame rate


@dataclass(frozen=True)
class CutSpec:
    """What a clip is: the shared geometry plus the preprocess rules that change the pixels stored."""

    resolution: int
    frames: int
    frame_stride: int
    step: int  # source frames between clip starts
    max_clips: int  # 0: all
    min_size: int
    max_aspect_ratio: float
    min_clip_std: float

    @property
    def span(self) -> int:
        """Source frames one clip covers."""
        return (self.frames - 1) * self.frame_stride + 1


@dataclass
class SourceRecord:
    """What became of one source video; saved beside its shard as the shard's commit record."""

    content_hash: str
    fingerprint: str
    source: str
    rejected: str = ""  # the reason, when the video gave no clip
    width: int = 0
    height: int = 0
    codec: str = ""
    fps: float = 0.0  # source frame rate (after resampling a variable one)
    decoded_frames: int = 0
    backend: str = ""
    starts: list[int] = field(default_factory=list)  # start frame of each stored clip
    clip_indices: list[int] = field(default_factory=list)  # position of each stored clip among all cut
    stats: list[list[float]] = field(default_factory=list)  # [min, max, mean, std] of each stored clip
    notes: list[str] = field(default_factory=list)
    limits: str = (
        ""  # DecodeLimits.key() the video was judged under (a rejection is redone under other limits)
    )


@dataclass(frozen=True)
class Job:
    path: str
    source: str
    content_hash: str
    shard: str  # shard path without suffix; the worker writes <shard>.npy then <shard>.json
    fingerprint: str
    spec: CutSpec
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    frame_fps: float = 25.0  # of a video stored as a folder of frames (preprocess.frame_folder_fps)


class Rejected(Exception):
    """The video is unusable; the message is the reason for the report."""


def process_source(job: Job) -> SourceRecord:
    """Cut one video into its shard and commit its record; never raises for a bad video (the record says why)."""
    record = cut_source(job)
    write_record(Path(job.shard), record)
    return record


def cut_source(job: Job) -> SourceRecord:
    """Cut one video into its shard; the record (not yet written) says what became of it."""
    record = SourceRecord(job.content_hash, job.fingerprint, job.source, limits=job.limits.key())
    try:
        _cut_into_shard(job, record)
    except (Rejected, VideoError) as err:
        record.rejected = str(err)
    except MemoryError:
        record.rejected = "out of memory while decoding"
    except Exception as err:  # a decoder surprise must not stop the other videos
        record.rejected = f"unexpected error while decoding: {type(err).__name__}: {err}"
    return record


def within_deadline(job: Job, cut: Callable[[Job], SourceRecord] = cut_source) -> SourceRecord:
    """In a worker process: `cut(job)` and commit its record, or, after `job.limits.timeout_s`, commit a rejection
    and end the process (video.run_with_deadline); the pool then reads the committed record instead of retrying
    the file."""
    shard = Path(job.shard)

    def abandon() -> None:
        remove_partial(shard.with_suffix(".npy"))
        reason = (
            f"decoding took longer than {job.limits.timeout_s:g} s (preprocess.decode_timeout_s): abandoned"
        )
        write_record(shard, SourceRecord(job.content_hash, job.fingerprint, job.source, rejected=reason,
                                         limits=job.limits.key()))  # fmt: skip

    record = run_with_deadline(lambda: cut(job), job.limits.timeout_s, abandon)
    write_record(shard, record)
    return record


def write_record(shard: Path, record: SourceRecord) -> None:
    """Not durable, like the shard it commits (see _write_shard)."""
    write_text_atomic(
        shard.with_suffix(".json"), json.dumps(asdict(record), ensure_ascii=False), durable=False
    )


def read_record(shard: Path) -> SourceRecord | None:
    """The committed record of a shard, or None when it is missing, unreadable or its .npy is missing."""
    try:
        record = SourceRecord(**json.loads(shard.with_suffix(".json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not record.rejected and not shard.with_suffix(".npy").is_file():
        return None
    return record


def _cut_into_shard(job: Job, record: SourceRecord) -> None:
    if Path(job.path).is_dir():
        _cut_frame_folder(job, record)
        return
    spec = job.spec
    job.limits.check_file_size(os.path.getsize(job.path))
    info = probe(job.path)
    _check_geometry(info, spec)
    job.limits.check_claims(info)
    record.width, record.height, record.codec = info.width, info.height, info.codec
    record.notes += _format_notes(info, spec)
    size = decode_size(info.width, info.height, spec.resolution)
    format_notes = list(record.notes)

    def cut(video: OpenedVideo) -> None:  # again from the start when decord fails partway (see with_frames)
        order, record.fps, timing_notes = _constant_rate_order(video.times, info.fps)
        record.backend, record.decoded_frames = video.backend, len(video.times)
        truncation = _truncation_notes(info, len(order), record.fps, video.notes)
        record.notes = [*format_notes, *video.notes, *timing_notes, *truncation]
        starts = clip_starts(len(order), spec)
        if not starts:
            raise Rejected(_too_short_reason(len(order), spec))
        _write_shard(Path(job.shard), video.frames_at, order, starts, size, spec, record)

    with_frames(job.path, size, job.limits, cut)


def _cut_frame_folder(job: Job, record: SourceRecord) -> None:
    """A video stored as numbered image files: every frame's header is checked (pixel bound) before its pixels
    are decoded, one frame at a time, at the stated frame rate."""
    spec, limits, files = job.spec, job.limits, frame_files(Path(job.path))
    limits.check_frames(len(files))
    limits.check_file_size(sum(f.stat().st_size for f in files))
    limits.check_duration(len(files) / job.frame_fps)
    width, height = frame_size(files[0])
    limits.check_pixels(width, height)
    info = VideoInfo(width, height, job.frame_fps, len(files), files[0].suffix.lower().lstrip("."), "rgb24",
                     len(files) / job.frame_fps)  # fmt: skip
    _check_geometry(info, spec)
    record.width, record.height, record.codec = width, height, info.codec
    record.notes += _format_notes(info, spec)
    record.backend, record.fps, record.decoded_frames = "frames", job.frame_fps, len(files)
    size = decode_size(width, height, spec.resolution)
    starts = clip_starts(len(files), spec)
    if not starts:
        raise Rejected(_too_short_reason(len(files), spec))
    frames_at = bounded_frames(files, size, limits)
    _write_shard(Path(job.shard), frames_at, np.arange(len(files)), starts, size, spec, record)


def _check_geometry(info: VideoInfo, spec: CutSpec) -> None:
    w, h = info.width, info.height
    if w <= 0 or h <= 0:
        raise Rejected("the video stream has no picture size")
    if min(w, h) < spec.min_size:
        raise Rejected(f"too small: {w}x{h} pixels, the minimum is {spec.min_size} (preprocess.min_size)")
    ratio = max(w, h) / min(w, h)
    if ratio > spec.max_aspect_ratio:
        raise Rejected(
            f"aspect ratio {ratio:.2f}:1 ({w}x{h}) is beyond the limit {spec.max_aspect_ratio:g} "
            "(preprocess.max_aspect_ratio)"
        )


def _format_notes(info: VideoInfo, spec: CutSpec) -> list[str]:
    notes = []
    if info.is_grayscale:
        notes.append(f"grayscale ({info.pix_fmt}) converted to RGB")
    if info.has_audio:
        notes.append("audio stream ignored")
    if min(info.width, info.height) < spec.resolution:
        notes.append(
            f"upscaled: {info.width}x{info.height} is smaller than the {spec.resolution}-pixel clips"
        )
    return notes


def _constant_rate_order(times: np.ndarray, claimed_fps: float) -> tuple[np.ndarray, float, list[str]]:
    """Frame indices at a constant rate, and that rate. A variable-rate video is resampled on a uniform time grid
    at its average rate (nearest frame), so motion per frame is the same across a clip."""
    n = len(times)
    identity = np.arange(n)
    if n < 2:
        return identity, claimed_fps or 25.0, []
    gaps = np.diff(times)
    span = float(times[-1] - times[0])
    if span <= 0 or (gaps <= 0).any():
        fps = claimed_fps or 25.0
        return identity, fps, [f"frame timestamps out of order: used decode order at {fps:.3g} fps"]
    fps = (n - 1) / span
    if gaps.max() / gaps.min() <= VFR_SPREAD:
        return identity, fps, []
    grid = times[0] + np.arange(int(np.floor(span * fps + 1e-6)) + 1) / fps
    order = np.clip(np.searchsorted(times, grid), 1, n - 1)
    order = np.where(grid - times[order - 1] < times[order] - grid, order - 1, order)
    note = (
        f"variable frame rate ({gaps.min() * 1000:.0f}-{gaps.max() * 1000:.0f} ms between frames): "
        f"resampled to a constant {fps:.3g} fps"
    )
    return order, fps, [note]


def _truncation_notes(info: VideoInfo, decoded: int, fps: float, decoder_notes: list[str]) -> list[str]:
    if any(n.startswith("truncated") for n in decoder_notes):
        return []
    expected = info.frames or round(info.duration * (info.fps or fps))
    if expected and decoded < expected - max(2, 0.05 * expected):
        return [
            f"truncated: kept the {decoded} frames that decode, of about {expected} the container announces"
        ]
    return []


def clip_starts(n_frames: int, spec: CutSpec) -> list[int]:
    """Start frames of the clips that fit in `n_frames`, `spec.step` apart, at most `spec.max_clips`."""
    starts = list(range(0, n_frames - spec.span + 1, spec.step))
    return starts[: spec.max_clips] if spec.max_clips else starts


def _too_short_reason(n: int, spec: CutSpec) -> str:
    if n == 1:
        return "a single frame (a still image), not a video"
    return (
        f"too short: {n} frames, one {spec.frames}-frame clip at frame_stride {spec.frame_stride} needs {spec.span} "
        "(data.frames, preprocess.frame_stride)"
    )


def _write_shard(
    shard: Path,
    frames_at: FramesAt,
    order: np.ndarray,
    starts: list[int],
    size: tuple[int, int],
    spec: CutSpec,
    record: SourceRecord,
) -> None:
    """Write the clips to a temporary .npy, then rename it into place (the record, written after, commits it).

    Plain sequential writes into the page cache, not fsynced: a killed process cannot lose them (fsync would guard
    against a power cut too, at a large cost in time; the memory map used before spent most of the stage in its
    msync)."""
    r, t = spec.resolution, spec.frames
    x0, y0 = (size[0] - r) // 2, (size[1] - r) // 2
    record.starts, record.clip_indices, record.stats = [], [], []
    with atomic_path(shard.with_suffix(".npy"), durable=False) as tmp:
        with tmp.open("wb") as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (len(starts), t, r, r, 3)}
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
            for index, start in enumerate(starts):
                picked = order[start : start + spec.span : spec.frame_stride].tolist()
                clip = np.ascontiguousarray(
                    checked_batch(frames_at(picked), t, size)[:, y0 : y0 + r, x0 : x0 + r]
                )
                stats = clip_stats(clip)
                if stats[3] < spec.min_clip_std:
                    continue
                f.write(clip.data)
                record.starts.append(start)
                record.clip_indices.append(index)
                record.stats.append(stats)
        kept = len(record.starts)
        if kept == 0:
            raise Rejected(f"all {len(starts)} clips are constant (pixel std below {spec.min_clip_std:g})")
        if kept < len(starts):  # rare: the header announced the dropped constant clips too; rewrite it
            record.notes.append(
                f"dropped {len(starts) - kept} constant clips (pixel std below {spec.min_clip_std:g})"
            )
            clips = np.fromfile(tmp, dtype=np.uint8, offset=offset).reshape(kept, t, r, r, 3)
            with tmp.open("wb") as f:
                np.save(f, clips)


def clip_stats(clip: np.ndarray) -> list[float]:
    """[min, max, mean, std] of a uint8 clip. Min and max are exact; mean and std are estimated from every second
    frame and every fourth pixel in each direction (1/32 of the float work, which showed in the stage's
    throughput), and computed over every pixel when the estimate says the clip may be constant."""
    lo, hi = int(clip.min()), int(clip.max())
    mean, std = _mean_std(clip[::2, ::4, ::4])
    if std < 2.0 and lo != hi:
        mean, std = _mean_std(clip)
    return [lo, hi, round(mean, 3), round(std, 3)]


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    x = x.astype(np.float32)
    mean = float(x.mean())
    return mean, float(np.sqrt(np.square(x - mean).mean()))
