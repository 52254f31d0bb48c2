"""Read and write video files: decord first (fastest here), PyAV for what decord cannot open.

Every reader checks what was actually decoded (shape, dtype, frame count) instead of trusting container metadata,
which is often wrong for real-world files (missing frame counts, variable frame rate, truncated data).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from pvdm.config.preprocess import DEFAULT_EXTENSIONS

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = tuple(
    DEFAULT_EXTENSIONS
)  # one list: what preprocess reads by default is what counts as video


class VideoError(RuntimeError):
    """A file cannot be used as a video; the message says why in words a person understands."""


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


def _decode_pyav(path: str | Path, size: tuple[int, int] | None, max_frames: int | None) -> DecodedVideo:
    import av

    frames, times, truncated, reason = [], [], False, ""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            expected = int(stream.frames or 0)
            try:
                for frame in container.decode(stream):
                    frames.append(frame_to_rgb(frame, size))
                    times.append(float(frame.time) if frame.time is not None else np.nan)
                    if max_frames is not None and len(frames) >= max_frames:
                        break
            except (av.FFmpegError, ValueError) as err:
                truncated, reason = True, ffmpeg_reason(err)
    except av.FFmpegError as err:
        raise VideoError(f"not a video the decoders recognise ({ffmpeg_reason(err)})") from None
    if not frames:
        raise VideoError(f"no frame could be decoded{f' ({reason})' if reason else ''}")
    wanted = expected if max_frames is None else min(expected, max_frames)
    truncated = truncated or (expected > 0 and len(frames) < wanted)
    video = DecodedVideo(np.stack(frames), fill_times(np.array(times)), backend="pyav", truncated=truncated)
    if truncated:
        video.notes.append(
            f"truncated: decoded {len(frames)} of {expected or '?'} frames{f' ({reason})' if reason else ''}"
        )
    return video


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
