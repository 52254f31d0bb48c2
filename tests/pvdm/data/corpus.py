"""A folder of real-world oddities for the preprocess tests: junk to reject, awkward-but-valid videos to keep.

`GOOD` maps each file that must give clips to the note its report entry must carry ("" for none); `JUNK` maps each
file that must be rejected to a phrase its reason must contain. Videos are 40 frames of moving sprites.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pvdm.data.synthetic import render_video

FRAMES = 40
GOOD = {
    "plain.mp4": "",
    "with audio.mp4": "audio stream ignored",
    "gray.mkv": "grayscale",
    "vfr.mp4": "variable frame rate",
    "vp8.webm": "",
    "vp9.webm": "",
    "sub/matroska.mkv": "",
    "UPPER CASE.MP4": "",
    "café vidéo ü 日本.mp4": "",
    "truncated.mp4": "truncated",
    "small 24x20.mp4": "upscaled",
    "fade to black.mp4": "dropped 3 constant clips",
}
DUPLICATES = {"copy of plain.mp4": "plain.mp4"}
JUNK = {
    "empty.mp4": "empty file",
    "random.mp4": "not a video the decoders recognise",
    "notes.avi": "a text file",
    "audio only.mp4": "no video stream",
    "folder.mp4": "a directory",
    "broken link.mp4": "broken symbolic link",
    "unreadable.mp4": "cannot be read",
    "short.mp4": "too short: 5 frames",
    "still.mp4": "a single frame",
    "tiny.mp4": "too small: 6x6",
    "wide.mp4": "aspect ratio 8.00:1",
    "black.mp4": "all 5 clips are constant",
}
IGNORED = ["README.txt"]


def sprites(seed: int, size: tuple[int, int] = (48, 64), frames: int = FRAMES) -> np.ndarray:
    """(frames, h, w, 3) uint8 moving sprites, cropped from a square render."""
    h, w = size
    return np.ascontiguousarray(
        render_video(np.random.default_rng([99, seed]), size=max(h, w), frames=frames)[:, :h, :w]
    )


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: int = 24,
    pts_ms: np.ndarray | None = None,
    audio: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode with PyAV; `pts_ms` gives each frame its own timestamp (variable frame rate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=options or {}) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts_ms is not None:
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = int(pts_ms[i]), Fraction(1, 1000)
            container.mux(video.encode(frame))
            if sound is not None:
                container.mux(sound.encode(_silence(16000 // fps)))
        container.mux(video.encode())
        if sound is not None:
            container.mux(sound.encode())
    return path


def _silence(samples: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 16000
    return frame


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=16000)
        for _ in range(10):
            container.mux(sound.encode(_silence(1024)))
        container.mux(sound.encode())
    return path


def make_unreadable(path: Path) -> None:
    """A file whose read fails. chmod does not stop root, so as root: a link to /proc/self/mem (EIO at offset 0)."""
    if os.geteuid() == 0:
        path.symlink_to("/proc/self/mem")
    else:
        path.write_bytes(b"\x00" * 64)
        path.chmod(0)


def build(root: Path) -> Path:
    """Write the whole corpus under `root` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    encode(root / "plain.mp4", sprites(1))
    encode(root / "with audio.mp4", sprites(2), audio=True)
    encode(root / "gray.mkv", sprites(3), codec="ffv1", pix_fmt="gray")
    gaps = np.where(np.arange(FRAMES - 1) % 2 == 0, 20, 60)  # 20 ms and 60 ms between frames, alternating
    encode(root / "vfr.mp4", sprites(4), pts_ms=np.concatenate([[0], np.cumsum(gaps)]))
    encode(root / "vp8.webm", sprites(5), codec="libvpx")
    encode(root / "vp9.webm", sprites(6), codec="libvpx-vp9")
    encode(root / "sub" / "matroska.mkv", sprites(7))
    encode(root / "UPPER CASE.MP4", sprites(8))
    encode(root / "café vidéo ü 日本.mp4", sprites(9))
    # moov atom first (faststart): cutting the file keeps the index but loses the data of the last frames
    whole = encode(root / "whole.mp4", sprites(10), options={"movflags": "faststart"}).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) * 7 // 10])
    (root / "whole.mp4").unlink()
    encode(root / "small 24x20.mp4", sprites(11, size=(20, 24)))
    fade = sprites(16)
    fade[16:] = 0  # black after two 8-frame clips
    encode(root / "fade to black.mp4", fade)
    shutil.copyfile(root / "plain.mp4", root / "copy of plain.mp4")

    (root / "empty.mp4").touch()
    (root / "random.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    (root / "notes.avi").write_text("These are my notes, not a video.\n" * 20)
    audio_only(root / "audio only.mp4")
    (root / "folder.mp4").mkdir()
    (root / "broken link.mp4").symlink_to(root / "nowhere.mp4")
    make_unreadable(root / "unreadable.mp4")
    encode(root / "short.mp4", sprites(12, frames=5))
    encode(root / "still.mp4", sprites(13, frames=1))
    encode(root / "tiny.mp4", sprites(14, size=(6, 6)))
    encode(root / "wide.mp4", sprites(15, size=(16, 128)))
    encode(root / "black.mp4", np.zeros_like(sprites(17)))
    (root / "README.txt").write_text("not a video")
    return root
