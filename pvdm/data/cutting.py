"""One source video -> one shard of clips. Runs in a worker process, one video at a time.

The frames are decoded already resized (short side = resolution, by the decoder's scaler), centre-cropped, and
written into the shard clip by clip, so memory holds one clip, not the whole video, on the decord path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pvdm.data.video import VideoError, VideoInfo, decode, first_line, probe

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


@dataclass(frozen=True)
class Job:
    path: str
    source: str
    content_hash: str
    shard: str  # shard path without suffix; the worker writes <shard>.npy then <shard>.json
    fingerprint: str
    spec: CutSpec


class Rejected(Exception):
    """The video is unusable; the message is the reason for the report."""


def process_source(job: Job) -> SourceRecord:
    """Cut one video into its shard; never raises for a bad video (the record says why it was rejected)."""
    record = SourceRecord(job.content_hash, job.fingerprint, job.source)
    try:
        _cut_into_shard(job, record)
    except (Rejected, VideoError) as err:
        record.rejected = str(err)
    except MemoryError:
        record.rejected = "out of memory while decoding"
    except Exception as err:  # a decoder surprise must not stop the other videos
        record.rejected = f"unexpected error while decoding: {type(err).__name__}: {err}"
    write_record(Path(job.shard), record)
    return record


def write_record(shard: Path, record: SourceRecord) -> None:
    tmp = shard.with_name(f".{shard.name}.json.partial")
    tmp.write_text(json.dumps(asdict(record), ensure_ascii=False))
    os.replace(tmp, shard.with_suffix(".json"))


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
    spec = job.spec
    info = probe(job.path)
    _check_geometry(info, spec)
    record.width, record.height, record.codec = info.width, info.height, info.codec
    record.notes += _format_notes(info, spec)
    size = decode_size(info.width, info.height, spec.resolution)
    frames_at, times, record.backend, decoder_notes = _open_frames(job.path, size)
    record.notes += decoder_notes
    order, fps, timing_notes = _constant_rate_order(times, info.fps)
    record.fps = fps
    record.notes += timing_notes
    record.decoded_frames = len(times)
    record.notes += _truncation_notes(info, len(order), fps, decoder_notes)
    starts = clip_starts(len(order), spec)
    if not starts:
        raise Rejected(_too_short_reason(len(order), spec))
    try:
        _write_shard(Path(job.shard), frames_at, order, starts, size, spec, record)
    except _DecordFailed:
        # decord indexed the file but could not decode all of it (a truncated file): PyAV keeps what decodes.
        record.notes = [n for n in record.notes if not n.startswith("truncated")]
        frames_at, times, record.backend, decoder_notes = _open_pyav(job.path, size)
        record.notes += decoder_notes
        order, fps, _ = _constant_rate_order(times, info.fps)
        starts = clip_starts(len(order), spec)
        if not starts:
            raise Rejected(_too_short_reason(len(order), spec)) from None
        record.decoded_frames = len(times)
        _write_shard(Path(job.shard), frames_at, order, starts, size, spec, record)


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


def decode_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the short side at `resolution` and the aspect ratio kept (before the centre crop)."""
    scale = resolution / min(width, height)
    return max(resolution, round(width * scale)), max(resolution, round(height * scale))


FramesAt = Callable[[list[int]], np.ndarray]


class _DecordFailed(Exception):
    pass


def _open_frames(path: str, size: tuple[int, int]) -> tuple[FramesAt, np.ndarray, str, list[str]]:
    """Random access to the resized frames, with decord when it opens the file, else PyAV (all frames decoded)."""
    try:
        from decord import VideoReader, cpu

        # One thread per decoder: the parallelism is one process per video.
        reader = VideoReader(path, ctx=cpu(0), width=size[0], height=size[1], num_threads=1)
        n = len(reader)
        if n == 0:
            raise VideoError("no frames")
        times = reader.get_frame_timestamp(list(range(n)))[:, 0].astype(np.float64)
    except Exception as err:
        frames_at, times, backend, notes = _open_pyav(path, size)
        return (
            frames_at,
            times,
            backend,
            [f"decoded with PyAV (decord failed on it: {first_line(err)})", *notes],
        )

    def frames_at(indices: list[int]) -> np.ndarray:
        try:
            return reader.get_batch(indices).asnumpy()
        except Exception as err:
            raise _DecordFailed(str(err)) from None

    return frames_at, times, "decord", []


def _open_pyav(path: str, size: tuple[int, int]) -> tuple[FramesAt, np.ndarray, str, list[str]]:
    video = decode(path, size=size, backend="pyav")
    return (lambda indices: video.frames[indices]), video.timestamps, "pyav", video.notes


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

    Plain sequential writes into the page cache: a killed process cannot lose them (fsync would guard against a
    power cut too, at a large cost in time; the memory map used before spent most of the stage in its msync)."""
    r, t = spec.resolution, spec.frames
    x0, y0 = (size[0] - r) // 2, (size[1] - r) // 2
    tmp = shard.with_name(f".{shard.name}.npy.partial")
    record.starts, record.clip_indices, record.stats = [], [], []
    with tmp.open("wb") as f:
        header = {"descr": "|u1", "fortran_order": False, "shape": (len(starts), t, r, r, 3)}
        np.lib.format.write_array_header_1_0(f, header)
        offset = f.tell()
        for index, start in enumerate(starts):
            picked = order[start : start + spec.span : spec.frame_stride].tolist()
            clip = np.ascontiguousarray(
                _checked_batch(frames_at(picked), t, size)[:, y0 : y0 + r, x0 : x0 + r]
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
        tmp.unlink()
        raise Rejected(f"all {len(starts)} clips are constant (pixel std below {spec.min_clip_std:g})")
    if kept < len(starts):  # rare: the header announced the dropped constant clips too; rewrite it
        record.notes.append(
            f"dropped {len(starts) - kept} constant clips (pixel std below {spec.min_clip_std:g})"
        )
        clips = np.fromfile(tmp, dtype=np.uint8, offset=offset).reshape(kept, t, r, r, 3)
        np.save(tmp.with_suffix(".trim"), clips)
        os.replace(tmp.with_suffix(".trim.npy"), tmp)
    os.replace(tmp, shard.with_suffix(".npy"))


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


def _checked_batch(batch: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """What the decoder returned must be uint8 (frames, height, width, 3): metadata is not trusted."""
    expected = (frames, size[1], size[0], 3)
    if batch.dtype != np.uint8 or batch.shape != expected:
        raise VideoError(f"the decoder returned {batch.dtype} {batch.shape}, expected uint8 {expected}")
    return batch
