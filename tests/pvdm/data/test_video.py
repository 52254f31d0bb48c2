from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pvdm.data import video
from pvdm.data.video import VideoError, decode, probe, read_video, write_gif, write_video
from tests.pvdm.data.corpus import encode, sprites


def test_mp4_round_trip_keeps_size_frames_and_pixels(tmp_path: Path) -> None:
    frames = sprites(0, size=(48, 64), frames=12)
    path = write_video(tmp_path / "out" / "v.mp4", frames, fps=12.5)
    info = probe(path)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 64, 48, 12)
    assert info.fps == pytest.approx(12.5)
    decoded = read_video(path)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 6  # h264, crf 18, chroma at half resolution


def test_odd_sizes_are_padded_to_even_for_yuv420(tmp_path: Path) -> None:
    frames = sprites(1, size=(33, 47), frames=3)
    decoded = read_video(write_video(tmp_path / "odd.mp4", frames, fps=8))
    assert decoded.shape == (3, 34, 48, 3)
    assert np.abs(decoded[:, :33, :47].astype(int) - frames).mean() < 6


def test_write_rejects_what_is_not_uint8_video(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8 frames"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)
    with pytest.raises(ValueError, match="uint8 frames"):
        write_gif(tmp_path / "x.gif", np.zeros((8, 8, 3), np.uint8), fps=8)


def test_gif_has_every_frame_and_loops(tmp_path: Path) -> None:
    frames = sprites(2, size=(16, 16), frames=5)
    path = write_gif(tmp_path / "p.gif", frames, fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info["loop"] == 0 and gif.info["duration"] == 100


def test_max_frames_and_resize_by_the_decoder(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", sprites(3, frames=20), fps=10)
    assert read_video(path, max_frames=7).shape == (7, 48, 64, 3)
    for backend in ("decord", "pyav"):
        out = decode(path, size=(40, 30), max_frames=5, backend=backend)
        assert out.frames.shape == (5, 30, 40, 3) and out.backend == backend
        assert out.timestamps == pytest.approx(np.arange(5) / 10)


def test_truncated_file_keeps_the_frames_that_decode(tmp_path: Path) -> None:
    whole = encode(tmp_path / "whole.mp4", sprites(4), options={"movflags": "faststart"}).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    out = decode(cut)
    assert out.backend == "pyav" and out.truncated
    assert 5 < len(out.frames) < 40
    assert any(n.startswith("truncated: decoded") for n in out.notes)


def test_decoded_shape_is_checked_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "v.mp4", sprites(5, frames=4), fps=8)

    def lying_decord(*args: object) -> video.DecodedVideo:  # a decoder that returns the wrong thing
        return video.DecodedVideo(np.zeros((4, 48, 64), np.float32), np.arange(4.0), "decord")

    monkeypatch.setattr(video, "_decode_decord", lying_decord)
    with pytest.raises(VideoError, match="expected uint8"):
        decode(path, backend="decord")
    out = decode(path)  # auto: falls back to PyAV and says so
    assert out.backend == "pyav" and out.frames.shape == (4, 48, 64, 3)
    assert "decoded with PyAV" in out.notes[0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "not a video the decoders recognise"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not a video the decoders recognise"),
    ],
)
def test_probe_names_the_problem(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoError, match=message):
        probe(path)
    with pytest.raises(VideoError):
        read_video(path)


@pytest.mark.parametrize("name", ["cc0/flower.webm", "cc0/friday.mp4", "ccby4/again.mkv"])
def test_real_files_decode_alike_with_both_backends(shared_videos: Path, name: str) -> None:
    path = shared_videos / name
    info = probe(path)
    a = decode(path, size=(80, 60), max_frames=8, backend="decord").frames
    b = decode(path, size=(80, 60), max_frames=8, backend="pyav").frames
    assert a.shape == b.shape == (8, 60, 80, 3) and a.dtype == b.dtype == np.uint8
    assert info.width > 80 and info.fps > 20
    assert np.abs(a.astype(int) - b).mean() < 4  # same pixels up to the scalers' rounding
