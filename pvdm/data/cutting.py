"""One source video -> one shard of clips. Runs in a worker process, one video at a time.

The frames are decoded already resized (short side = resolution, by the decoder's scaler), centre-cropped, and
written into the shard clip by clip, so memory holds about one clip, not the whole video: decord reads the frames
of each clip by index; the PyAV fallback decodes the file twice, first for the timestamps only, then streaming and
keeping just the frames the current clip still needs.

A video is untrusted input: its size, frame count, frame size and duration are checked against `DecodeLimits`
before decoding (what the container claims) and while decoding (what it really holds), and `within_deadline`
abandons a decoder that hangs.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pvdm.atomic import atomic_path, remove_partial, write_text_atomic
from pvdm.data.frame_folders import frame_files, frame_size, load_frame
from pvdm.data.video import VideoError, VideoInfo, ffmpeg_reason, fill_times, first_line, frame_to_rgb, probe

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


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on one untrusted video (preprocess.max_file_bytes, max_frames, max_pixels, max_duration_s,
    decode_timeout_s): over any of them the video is rejected, with the bound named, and the others go on."""

    max_file_bytes: int = 4 * 2**30
    max_frames: int = 200_000
    max_pixels: int = 8192 * 8192
    max_duration_s: float = 4 * 3600.0
    timeout_s: float = 1800.0

    def key(self) -> str:
        """Recorded with a rejection: a video rejected under other limits is decoded again."""
        return json.dumps(asdict(self), sort_keys=True)

    def check_file_size(self, size: int) -> None:
        if size > self.max_file_bytes:
            raise Rejected(
                f"file of {size:,} bytes is over the limit of {self.max_file_bytes:,} (preprocess.max_file_bytes)"
            )

    def check_frames(self, frames: int, what: str = "has") -> None:
        if frames > self.max_frames:
            raise Rejected(
                f"{what} {frames:,} frames, over the limit of {self.max_frames:,} (preprocess.max_frames)"
            )

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise Rejected(
                f"frames of {width}x{height} = {width * height:,} pixels are over the limit of {self.max_pixels:,} "
                "(preprocess.max_pixels)"
            )

    def check_duration(self, seconds: float, what: str = "lasts") -> None:
        if seconds > self.max_duration_s:
            raise Rejected(
                f"{what} {seconds:,.0f} s, over the limit of {self.max_duration_s:,.0f} s (preprocess.max_duration_s)"
            )


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


TIMED_OUT_EXIT = 75  # exit status of a worker process that abandoned a hung decoder


def within_deadline(job: Job, cut: Callable[[Job], SourceRecord] = cut_source) -> SourceRecord:
    """In a worker process: `cut(job)` and commit its record, or, after `job.limits.timeout_s`, commit a rejection
    and end the process. A decoder stuck inside C code cannot be interrupted from Python, so the process goes; the
    pool then reads the committed record instead of retrying the file."""
    lock, finished = threading.Lock(), threading.Event()

    def expire() -> None:
        with lock:
            if finished.is_set():
                return
            shard = Path(job.shard)
            remove_partial(shard.with_suffix(".npy"))
            reason = f"decoding took longer than {job.limits.timeout_s:g} s (preprocess.decode_timeout_s): abandoned"
            write_record(shard, SourceRecord(job.content_hash, job.fingerprint, job.source, rejected=reason,
                                             limits=job.limits.key()))  # fmt: skip
            os._exit(TIMED_OUT_EXIT)

    timer = threading.Timer(job.limits.timeout_s, expire)
    timer.daemon = True
    timer.start()
    record = cut(job)
    with lock:  # from here on the timer does nothing
        finished.set()
    timer.cancel()
    write_record(Path(job.shard), record)
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
    spec, limits = job.spec, job.limits
    limits.check_file_size(os.path.getsize(job.path))
    info = probe(job.path)
    _check_geometry(info, spec)
    _check_claims(info, limits)
    record.width, record.height, record.codec = info.width, info.height, info.codec
    record.notes += _format_notes(info, spec)
    size = decode_size(info.width, info.height, spec.resolution)
    frames_at, times, record.backend, decoder_notes = _open_frames(job.path, size, limits)
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
        frames_at, times, record.backend, decoder_notes = _open_pyav(job.path, size, limits)
        record.notes += decoder_notes
        order, fps, _ = _constant_rate_order(times, info.fps)
        starts = clip_starts(len(order), spec)
        if not starts:
            raise Rejected(_too_short_reason(len(order), spec)) from None
        record.decoded_frames = len(times)
        _write_shard(Path(job.shard), frames_at, order, starts, size, spec, record)


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

    def frames_at(indices: list[int]) -> np.ndarray:
        for i in indices:
            limits.check_pixels(*frame_size(files[i]))
        return np.stack([load_frame(files[i], size) for i in indices])

    starts = clip_starts(len(files), spec)
    if not starts:
        raise Rejected(_too_short_reason(len(files), spec))
    _write_shard(Path(job.shard), frames_at, np.arange(len(files)), starts, size, spec, record)


def _check_claims(info: VideoInfo, limits: DecodeLimits) -> None:
    """What the container announces, before any decoding (a lie is caught again while decoding)."""
    limits.check_pixels(info.width, info.height)
    limits.check_frames(info.frames, "announces")
    limits.check_duration(info.duration, "announces that it lasts")


def _check_decoded(times: np.ndarray, limits: DecodeLimits) -> None:
    limits.check_frames(len(times))
    if len(times) > 1:
        limits.check_duration(float(times[-1] - times[0]))


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


def _open_frames(
    path: str, size: tuple[int, int], limits: DecodeLimits
) -> tuple[FramesAt, np.ndarray, str, list[str]]:
    """Access to the resized frames in clip order, with decord when it opens the file, else PyAV (streamed)."""
    try:
        from decord import VideoReader, cpu

        # One thread per decoder: the parallelism is one process per video.
        reader = VideoReader(path, ctx=cpu(0), width=size[0], height=size[1], num_threads=1)
        n = len(reader)
        if n == 0:
            raise VideoError("no frames")
        limits.check_frames(n)  # decord's index holds every frame's position: the real count, before decoding
        times = reader.get_frame_timestamp(list(range(n)))[:, 0].astype(np.float64)
        _check_decoded(times, limits)
    except Rejected:
        raise
    except Exception as err:
        frames_at, times, backend, notes = _open_pyav(path, size, limits)
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


def _open_pyav(
    path: str, size: tuple[int, int], limits: DecodeLimits
) -> tuple[FramesAt, np.ndarray, str, list[str]]:
    """PyAV in two passes: the timestamps of every frame that decodes (no pixels kept, the count bounded), then
    the frames themselves, streamed to the clips in order."""
    times, notes = pyav_timestamps(path, limits.max_frames)
    _check_decoded(times, limits)
    return StreamedFrames(path, size, len(times)), times, "pyav", notes


def pyav_timestamps(path: str, max_frames: int) -> tuple[np.ndarray, list[str]]:
    """Presentation time of each frame PyAV decodes, stopping at a decoding error (a torn file: noted) and
    rejecting the video past `max_frames` frames."""
    import av

    times: list[float] = []
    reason = ""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            announced = int(stream.frames or 0)
            try:
                for frame in container.decode(stream):
                    times.append(float(frame.time) if frame.time is not None else np.nan)
                    if len(times) > max_frames:
                        raise Rejected(
                            f"has more than {max_frames:,} frames, the limit (preprocess.max_frames)"
                        )
            except (av.FFmpegError, ValueError) as err:
                reason = ffmpeg_reason(err)
    except av.FFmpegError as err:
        raise VideoError(f"not a video the decoders recognise ({ffmpeg_reason(err)})") from None
    if not times:
        raise VideoError(f"no frame could be decoded{f' ({reason})' if reason else ''}")
    notes = []
    if reason or (announced and len(times) < announced):
        notes.append(
            f"truncated: decoded {len(times)} of {announced or '?'} frames{f' ({reason})' if reason else ''}"
        )
    return fill_times(np.array(times)), notes


class StreamedFrames:
    """The frames of one PyAV decode, served to requests in clip order (the smallest index asked never goes
    back). Keeps only the frames from the current request's first index to the furthest decoded, so memory holds
    about one clip's span, not the video."""

    def __init__(self, path: str, size: tuple[int, int], count: int) -> None:
        self.path, self.size, self.count = path, size, count
        self._frames: Iterator[np.ndarray] | None = None
        self._next = 0  # index of the next frame the decoder yields
        self._floor = 0  # frames before this one are no longer kept
        self._kept: dict[int, np.ndarray] = {}

    def __call__(self, indices: list[int]) -> np.ndarray:
        lo, hi = min(indices), max(indices)
        if lo < self._floor:
            raise ValueError(f"frame {lo} requested after the frames before {self._floor} were let go")
        self._floor = lo
        self._kept = {i: f for i, f in self._kept.items() if i >= lo}
        frames = self._frames if self._frames is not None else self._decode()
        self._frames = frames
        while self._next <= hi:
            frame = next(frames, None)
            if frame is None:
                raise VideoError(
                    f"the second PyAV pass ended at frame {self._next}, the first decoded {self.count}"
                )
            if self._next >= lo:
                self._kept[self._next] = frame
            self._next += 1
        return np.stack([self._kept[i] for i in indices])

    def _decode(self) -> Iterator[np.ndarray]:
        import av

        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for frame in container.decode(stream):
                    yield frame_to_rgb(frame, self.size)
            except (av.FFmpegError, ValueError):
                return  # the torn end the first pass met: the frames before it were all served


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


def _checked_batch(batch: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """What the decoder returned must be uint8 (frames, height, width, 3): metadata is not trusted."""
    expected = (frames, size[1], size[0], 3)
    if batch.dtype != np.uint8 or batch.shape != expected:
        raise VideoError(f"the decoder returned {batch.dtype} {batch.shape}, expected uint8 {expected}")
    return batch
