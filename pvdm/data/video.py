"""Read and write video files: decord first (fastest here), PyAV for what decord cannot open or finish.

Every reader checks what was actually decoded (shape, dtype, frame count) instead of trusting container metadata,
which is often wrong for real-world files (missing frame counts, variable frame rate, truncated data).

Two ways to read: `decode` holds the whole video (evaluation, tests); `with_frames` serves resized frames by
index to a consumer that asks in clip order (preprocessing), so memory holds about one clip, not the video:
decord reads the frames asked for by index, the PyAV fallback decodes the file twice, first for the timestamps
only, then streaming and keeping just the frames the current clip still needs. A video there is untrusted input:
its size, frame count, frame size and duration are checked against `DecodeLimits` before decoding (what the
container claims) and while decoding (what it really holds), and `run_with_deadline` abandons a decoder that hangs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pvdm.config.preprocess import DEFAULT_EXTENSIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

VIDEO_EXTENSIONS = tuple(
    DEFAULT_EXTENSIONS
)  # one list: what preprocess reads by default is what counts as video


class VideoError(RuntimeError):
    """A file cannot be used as a video; the message says why in words a person understands."""


class OverLimit(VideoError):
    """The video is over one of the DecodeLimits; the message names the bound."""


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
            raise OverLimit(
                f"file of {size:,} bytes is over the limit of {self.max_file_bytes:,} (preprocess.max_file_bytes)"
            )

    def check_frames(self, frames: int, what: str = "has") -> None:
        if frames > self.max_frames:
            raise OverLimit(
                f"{what} {frames:,} frames, over the limit of {self.max_frames:,} (preprocess.max_frames)"
            )

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise OverLimit(
                f"frames of {width}x{height} = {width * height:,} pixels are over the limit of {self.max_pixels:,} "
                "(preprocess.max_pixels)"
            )

    def check_duration(self, seconds: float, what: str = "lasts") -> None:
        if seconds > self.max_duration_s:
            raise OverLimit(
                f"{what} {seconds:,.0f} s, over the limit of {self.max_duration_s:,.0f} s (preprocess.max_duration_s)"
            )

    def check_claims(self, info: VideoInfo) -> None:
        """What the container announces, before any decoding (a lie is caught again while decoding)."""
        self.check_pixels(info.width, info.height)
        self.check_frames(info.frames, "announces")
        self.check_duration(info.duration, "announces that it lasts")

    def check_decoded(self, times: np.ndarray) -> None:
        """What the decoder found: the count and time span of the frames."""
        self.check_frames(len(times))
        if len(times) > 1:
            self.check_duration(float(times[-1] - times[0]))


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (a claim to check, not a fact)."""

    width: int
    height: int
    fps: float  # average frame rate; 0.0 when the container does not say
    frames: int  # frame count from the container; 0 when unknown
    codec: str
    pix_fmt: str
    duration: float  # seconds; 0.0 when unknown
    has_audio: bool = False

    @property
    def is_grayscale(self) -> bool:
        return self.pix_fmt.startswith(("gray", "ya8", "monow", "monob"))


@dataclass
class DecodedVideo:
    """Frames as decoded (uint8 (T, H, W, 3) RGB), their timestamps in seconds, and what went wrong on the way."""

    frames: np.ndarray
    timestamps: np.ndarray  # (T,) presentation time of each frame, seconds
    backend: str  # "decord" or "pyav"
    truncated: bool = False  # decoding stopped on an error before the container's frame count
    notes: list[str] = field(default_factory=list)


def probe(path: str | Path) -> VideoInfo:
    """Open the container with PyAV and describe its first video stream; VideoError when there is none."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                raise VideoError(f"no video stream (the file has {' and '.join(kinds)} streams only)")
            return _describe(container, container.streams.video[0])
    except av.FFmpegError as err:
        raise VideoError(f"not a video the decoders recognise ({ffmpeg_reason(err)})") from None


def _describe(container, stream) -> VideoInfo:  # noqa: ANN001 - PyAV objects
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    if not duration and container.duration:
        duration = container.duration / 1_000_000  # container duration is in microseconds
    return VideoInfo(
        width=int(ctx.width or 0),
        height=int(ctx.height or 0),
        fps=float(rate),
        frames=int(stream.frames or 0),
        codec=str(ctx.name),
        pix_fmt=str(ctx.pix_fmt or ""),
        duration=duration,
        has_audio=bool(container.streams.audio),
    )


def ffmpeg_reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def decode(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    backend: str = "auto",
) -> DecodedVideo:
    """Decode up to `max_frames` frames, resized to `size` = (width, height) by the decoder's scaler when given.

    `backend="auto"` tries decord, then PyAV when decord cannot open or finish the file; PyAV decodes sequentially
    and keeps the frames before a decoding error (a truncated file), which decord cannot.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav (got {backend!r})")
    errors = []
    if backend in ("auto", "decord"):
        try:
            return _checked(_decode_decord(path, size, max_frames), size)
        except Exception as err:  # decord raises its own DECORDError and sometimes plain RuntimeError
            if backend == "decord":
                raise VideoError(f"decord cannot decode it ({first_line(err)})") from None
            errors.append(f"decord: {first_line(err)}")
    try:
        video = _checked(_decode_pyav(path, size, max_frames), size)
    except VideoError as err:
        raise VideoError("; ".join([*errors, str(err)])) from None
    if errors:
        video.notes.append(f"decoded with PyAV ({errors[0]})")
    return video


_DECORD_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (Error: )?")


def first_line(err: Exception) -> str:
    """The first line of an error, without decord's "[12:00:00] /src/file.cc:486: Error: " prefix."""
    text = str(err).strip().splitlines()
    return _DECORD_PREFIX.sub("", text[0])[:200] if text else type(err).__name__


def _decode_decord(path: str | Path, size: tuple[int, int] | None, max_frames: int | None) -> DecodedVideo:
    from decord import VideoReader, cpu

    width, height = size if size else (-1, -1)
    # One decoder thread: parallelism comes from decoding several files at once, one per process.
    reader = VideoReader(str(path), ctx=cpu(0), width=width, height=height, num_threads=1)
    n = len(reader) if max_frames is None else min(len(reader), max_frames)
    if n == 0:
        raise VideoError("decord found no frames")
    indices = list(range(n))
    frames = np.concatenate([reader.get_batch(chunk).asnumpy() for chunk in _chunks(indices, 256)])
    timestamps = reader.get_frame_timestamp(indices)[:, 0].astype(np.float64)
    return DecodedVideo(frames=frames, timestamps=timestamps, backend="decord")


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@dataclass
class _PyAVPass:
    """What one PyAV pass over a file met: the frame count its stream announces (0: unknown) and the decoding
    error that ended the pass early ("" when it reached the end)."""

    announced: int = 0
    error: str = ""

    def truncated(self, decoded: int, wanted: int) -> bool:
        return bool(self.error) or (self.announced > 0 and decoded < wanted)

    def notes(self, decoded: int, wanted: int) -> list[str]:
        if not self.truncated(decoded, wanted):
            return []
        why = f" ({self.error})" if self.error else ""
        return [f"truncated: decoded {decoded} of {self.announced or '?'} frames{why}"]

    def nothing_decoded(self) -> VideoError:
        return VideoError(f"no frame could be decoded{f' ({self.error})' if self.error else ''}")


def _pyav_frames(path: str | Path, read: Callable[[Any], T], run: _PyAVPass) -> Iterator[T]:
    """read(frame) of each frame of the first video stream, in decode order. A decoding error (a torn file) ends
    the frames and is kept in `run.error`; a file PyAV cannot open, or one without a video stream, is a
    VideoError. `read` runs inside the decoding guard: its ValueError ends the pass like a decoding error."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            run.announced = int(stream.frames or 0)
            try:
                for frame in container.decode(stream):
                    yield read(frame)
            except (av.FFmpegError, ValueError) as err:
                run.error = ffmpeg_reason(err)
    except av.FFmpegError as err:
        raise VideoError(f"not a video the decoders recognise ({ffmpeg_reason(err)})") from None


def _frame_time(frame) -> float:  # noqa: ANN001 - av.VideoFrame
    return float(frame.time) if frame.time is not None else np.nan


def _decode_pyav(path: str | Path, size: tuple[int, int] | None, max_frames: int | None) -> DecodedVideo:
    run, frames, times = _PyAVPass(), [], []
    with closing(_pyav_frames(path, lambda f: (frame_to_rgb(f, size), _frame_time(f)), run)) as decoded:
        for rgb, time in decoded:
            frames.append(rgb)
            times.append(time)
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise run.nothing_decoded()
    wanted = run.announced if max_frames is None else min(run.announced, max_frames)
    return DecodedVideo(np.stack(frames), fill_times(np.array(times)), backend="pyav",
                        truncated=run.truncated(len(frames), wanted), notes=run.notes(len(frames), wanted))  # fmt: skip


def frame_to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:  # noqa: ANN001 - av.VideoFrame
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="BICUBIC")


def fill_times(times: np.ndarray) -> np.ndarray:
    """Frames without a timestamp get their index (as if 1 fps) only when none has one; else interpolate."""
    if np.isnan(times).all():
        return np.arange(len(times), dtype=np.float64)
    idx = np.arange(len(times))
    ok = ~np.isnan(times)
    return np.interp(idx, idx[ok], times[ok])


def _checked(video: DecodedVideo, size: tuple[int, int] | None) -> DecodedVideo:
    """Trust the pixels, not the metadata: uint8, (T, H, W, 3), the size asked for, finite timestamps."""
    x = video.frames
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] == 0:
        raise VideoError(f"decoder returned {x.dtype} {x.shape}, expected uint8 (T, H, W, 3)")
    if size is not None and (x.shape[2], x.shape[1]) != tuple(size):
        raise VideoError(f"decoder returned {x.shape[2]}x{x.shape[1]} frames, asked for {size[0]}x{size[1]}")
    if len(video.timestamps) != len(x) or not np.isfinite(video.timestamps).all():
        video.timestamps = np.arange(len(x), dtype=np.float64)
        video.notes.append("frame timestamps missing: assumed a constant frame rate")
    return video


def read_video(path: str | Path, *, max_frames: int | None = None) -> np.ndarray:
    """All frames (or the first `max_frames`) at their stored size: uint8 (T, H, W, 3) RGB."""
    return decode(path, max_frames=max_frames).frames


# ---- frames by index, for cutting clips: bounded memory and time ---------------------------------------------

FramesAt = Callable[[list[int]], np.ndarray]  # frame indices -> uint8 (len, H, W, 3)


@dataclass
class OpenedVideo:
    """Resized frames served by index (in clip order: the smallest index asked never goes back), the timestamps of
    every frame that decodes, the decoder, and what it noted."""

    frames_at: FramesAt
    times: np.ndarray  # (N,) seconds
    backend: str  # "decord" or "pyav"
    notes: list[str] = field(default_factory=list)


class DecordFailed(Exception):
    """decord indexed the file but could not decode all of it (a truncated file)."""


def decode_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the short side at `resolution` and the aspect ratio kept (before the centre crop)."""
    scale = resolution / min(width, height)
    return max(resolution, round(width * scale)), max(resolution, round(height * scale))


def with_frames(path: str, size: tuple[int, int], limits: DecodeLimits, use: Callable[[OpenedVideo], T]) -> T:
    """use(the frames of `path` at `size` = (width, height)), by decord when it opens the file, else by PyAV; when
    decord fails partway through (a truncated file it indexed), use(PyAV's frames) again from the start: PyAV
    keeps what decodes."""
    try:
        return use(open_frames(path, size, limits))
    except DecordFailed:
        return use(open_pyav(path, size, limits))


def open_frames(path: str, size: tuple[int, int], limits: DecodeLimits) -> OpenedVideo:
    """The resized frames, with decord when it opens the file, else PyAV (streamed)."""
    try:
        from decord import VideoReader, cpu

        # One thread per decoder: the parallelism is one process per video.
        reader = VideoReader(path, ctx=cpu(0), width=size[0], height=size[1], num_threads=1)
        n = len(reader)
        if n == 0:
            raise VideoError("no frames")
        limits.check_frames(n)  # decord's index holds every frame's position: the real count, before decoding
        times = reader.get_frame_timestamp(list(range(n)))[:, 0].astype(np.float64)
        limits.check_decoded(times)
    except OverLimit:
        raise
    except Exception as err:
        video = open_pyav(path, size, limits)
        video.notes.insert(0, f"decoded with PyAV (decord failed on it: {first_line(err)})")
        return video

    def frames_at(indices: list[int]) -> np.ndarray:
        try:
            return reader.get_batch(indices).asnumpy()
        except Exception as err:
            raise DecordFailed(str(err)) from None

    return OpenedVideo(frames_at, times, "decord")


def open_pyav(path: str, size: tuple[int, int], limits: DecodeLimits) -> OpenedVideo:
    """PyAV in two passes: the timestamps of every frame that decodes (no pixels kept, the count bounded), then
    the frames themselves, streamed to the clips in order."""
    times, notes = pyav_timestamps(path, limits.max_frames)
    limits.check_decoded(times)
    return OpenedVideo(StreamedFrames(path, size, len(times)), times, "pyav", notes)


def pyav_timestamps(path: str, max_frames: int) -> tuple[np.ndarray, list[str]]:
    """Presentation time of each frame PyAV decodes, stopping at a decoding error (a torn file: noted) and
    rejecting the video past `max_frames` frames."""
    run, times = _PyAVPass(), []
    with closing(_pyav_frames(path, _frame_time, run)) as decoded:
        for time in decoded:
            times.append(time)
            if len(times) > max_frames:
                raise OverLimit(f"has more than {max_frames:,} frames, the limit (preprocess.max_frames)")
    if not times:
        raise run.nothing_decoded()
    return fill_times(np.array(times)), run.notes(len(times), run.announced)


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
        if self._frames is None:
            # the torn end the first pass met ends these frames too: the frames before it are all served
            self._frames = _pyav_frames(self.path, lambda f: frame_to_rgb(f, self.size), _PyAVPass())
        while self._next <= hi:
            frame = next(self._frames, None)
            if frame is None:
                raise VideoError(
                    f"the second PyAV pass ended at frame {self._next}, the first decoded {self.count}"
                )
            if self._next >= lo:
                self._kept[self._next] = frame
            self._next += 1
        return np.stack([self._kept[i] for i in indices])


def checked_batch(batch: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """What the decoder returned must be uint8 (frames, height, width, 3): metadata is not trusted."""
    expected = (frames, size[1], size[0], 3)
    if batch.dtype != np.uint8 or batch.shape != expected:
        raise VideoError(f"the decoder returned {batch.dtype} {batch.shape}, expected uint8 {expected}")
    return batch


TIMED_OUT_EXIT = 75  # exit status of a worker process that abandoned a hung decoder


def run_with_deadline(work: Callable[[], T], seconds: float, on_expiry: Callable[[], None]) -> T:
    """In a worker process: work(), or, after `seconds`, on_expiry() and the end of the process (exit status
    TIMED_OUT_EXIT). A decoder stuck inside C code cannot be interrupted from Python, so the process goes."""
    lock, finished = threading.Lock(), threading.Event()

    def expire() -> None:
        with lock:
            if finished.is_set():
                return
            on_expiry()
            os._exit(TIMED_OUT_EXIT)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        return work()
    finally:
        with lock:  # from here on the timer does nothing
            finished.set()
        timer.cancel()


def write_video(
    path: str | Path, frames: np.ndarray, fps: float, *, codec: str = "libx264", crf: int = 18
) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames as an mp4 (h264, yuv420p: plays everywhere).

    yuv420p needs even sizes, so an odd height or width is padded by repeating the last row or column.
    """
    frames = _as_video_array(frames)
    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import av

    with av.open(str(path), mode="w") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate)
        # Explicit time base and timestamps: left unset, x264's rate control saw undefined frame durations and
        # the same frames gave different files from run to run.
        stream.codec_context.time_base = 1 / rate
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # One thread keeps the output byte-identical from run to run.
            stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# BT.601 limited range, the matrix decoders assume for untagged video of this size.
_RGB_TO_YUV = (
    np.array(
        [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
    )
    / 255.0
)


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB with even H, W -> the planar yuv420p layout PyAV takes: (H * 3 / 2, W) uint8.

    Done here rather than by the encoder's scaler, whose output depended on the memory alignment of the input,
    so the same frames gave different files from run to run."""
    h, w, _ = image.shape
    yuv = image.astype(np.float64) @ _RGB_TO_YUV.T + np.array([16.0, 128.0, 128.0])
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))  # 2x2 average: (H/2, W/2, 2)
    planes = [yuv[..., 0].ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()]
    return np.concatenate(planes).round().clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_gif(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames as a looping GIF (for previews in a browser or MLflow)."""
    from PIL import Image

    frames = _as_video_array(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    duration_ms = max(int(round(1000 / fps)), 20)  # browsers slow GIFs down below 20 ms per frame
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False
    )
    return path


def _as_video_array(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)
