"""The embedded dataset: small real mp4 files of striped objects moving over smooth, panning backgrounds.

Each video is drawn from its own generator seeded by (seed, video index), so a video does not depend on how many
others are generated, and the same seed gives the same pixels. The files are encoded with h264 and go through the
pipeline like any downloaded video (x264 now and then encodes the same pixels slightly differently, so the files are
equal in content, not always byte for byte). Objects differ in shape, pattern (stripes or checks), size, colour,
speed, direction and spin, and bounce off the borders, so a model has motion to learn and a clip's continuation is
predictable from its past.

The detail is coarse on purpose: the demo trains a tiny autoencoder for a few CPU minutes at 32x32. With fine
textures (stripes of 1-3 pixels, gratings, checkerboards) it learnt the still background and lost the motion
(reconstructions moved 0.15x as much as the clips); with large objects, stripes about as wide as the object's
radius and smooth backgrounds it kept 2-3x more of it.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pvdm.data.video import write_video

SHAPES = ("circle", "square", "triangle", "diamond", "ring")
TEXTURES = ("stripes", "checker")
CLASS_FOLDERS = {"stripes": "stripes", "checker": "checkers"}  # the two classes of the labelled dataset


@dataclass
class _Sprite:
    shape: str
    radius: float
    pos: np.ndarray  # (2,) x, y in pixels
    vel: np.ndarray  # (2,) pixels per frame
    angle: float
    spin: float  # radians per frame
    colors: tuple[np.ndarray, np.ndarray]
    texture: str  # "stripes" or "checker"
    period: float  # texture period in pixels


def generate_videos(
    out_dir: str | Path,
    n_videos: int,
    *,
    size: int = 64,
    frames: int = 64,
    fps: float = 16.0,
    seed: int = 0,
    classes: bool = False,
) -> list[Path]:
    """Write `n_videos` mp4 files `synth_0000.mp4`, ... of `frames` frames at `size`x`size` into `out_dir`.

    classes: two labelled classes, by texture: video i is `stripes` (even i) or `checkers` (odd i), every object in
    it has that texture, and it is written into the class's folder (out_dir/stripes/, out_dir/checkers/), the
    layout `preprocess.labels: folder` reads."""
    if n_videos < 0 or size < 8 or frames < 1 or fps <= 0:
        raise ValueError(
            f"need n_videos >= 0, size >= 8, frames >= 1, fps > 0 (got {n_videos}, {size}, {frames}, {fps})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_videos):
        texture = TEXTURES[i % 2] if classes else None
        video = render_video(np.random.default_rng([seed, i]), size=size, frames=frames, texture=texture)
        folder = out / CLASS_FOLDERS[texture] if texture else out
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(write_video(folder / f"synth_{i:04d}.mp4", video, fps))
    return paths


def render_video(rng: np.random.Generator, *, size: int, frames: int, texture: str | None = None) -> np.ndarray:
    """One video as uint8 (T, size, size, 3); `texture` ('stripes' or 'checker') gives every object that texture."""
    background = _texture_canvas(rng, 2 * size)
    pan = rng.uniform(-0.6, 0.6, size=2) * size / 64  # slow camera pan, pixels per frame
    sprites = [_random_sprite(rng, size) for _ in range(rng.integers(1, 4))]
    for sprite in sprites if texture else []:
        sprite.texture = texture  # after the draw, so the random stream (and all else) is the unlabelled one
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    origin = rng.uniform(0, size, size=2)
    for t in range(frames):
        ox, oy = (origin + pan * t).astype(int) % size
        frame = background[oy : oy + size, ox : ox + size].copy()
        for sprite in sprites:
            _draw(frame, sprite, xx, yy)
            _step(sprite, size)
        video[t] = frame
    return video


def _random_color(rng: np.random.Generator) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0))
    return np.array([r, g, b], dtype=np.float32) * 255


def _texture_canvas(rng: np.random.Generator, n: int) -> np.ndarray:
    """A tileable (n, n, 3) uint8 background in two colours: smooth blobs or a broad diagonal grating."""
    j, i = np.mgrid[0:n, 0:n]  # rows (y), columns (x)
    if rng.integers(2) == 0:  # one or two periods across the canvas; integer frequencies keep it tileable
        fx, fy = rng.integers(1, 3, size=2)
        t = 0.5 + 0.5 * _sin_lut(n)[(fx * i + fy * j) % n]
    else:  # smooth blobs: a few random low-frequency Fourier terms, cos(a + phase) = cos a cos p - sin a sin p
        t = np.zeros((n, n))
        for _ in range(4):
            fx, fy = rng.integers(-3, 4, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            k = (fx * i + fy * j) % n
            t += _cos_lut(n)[k] * math.cos(phase) - _sin_lut(n)[k] * math.sin(phase)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    a, b = _random_color(rng) * 0.6, _random_color(rng) * 0.6  # darker than the sprites, so they stand out
    image = a + t[..., None] * (b - a)
    return np.tile(image.clip(0, 255).astype(np.uint8), (2, 2, 1))  # doubled so a panning window never wraps


# Sines from the scalar libm, not numpy's vector loops: those round differently with the memory alignment of the
# array, which made the same seed give slightly different pixels from run to run.
def _sin_lut(n: int) -> np.ndarray:
    return np.array([math.sin(2 * math.pi * k / n) for k in range(n)])


def _cos_lut(n: int) -> np.ndarray:
    return np.array([math.cos(2 * math.pi * k / n) for k in range(n)])


def _random_sprite(rng: np.random.Generator, size: int) -> _Sprite:
    radius = rng.uniform(0.15, 0.3) * size
    speed = rng.uniform(0.6, 4.5) * size / 64
    heading = rng.uniform(0, 2 * np.pi)
    return _Sprite(
        shape=str(rng.choice(SHAPES)),
        radius=radius,
        pos=rng.uniform(radius, size - radius, size=2),
        vel=speed * np.array([np.cos(heading), np.sin(heading)]),
        angle=rng.uniform(0, 2 * np.pi),
        spin=rng.uniform(-0.15, 0.15),
        colors=(_random_color(rng), _random_color(rng)),
        texture=str(rng.choice(["stripes", "checker"])),
        period=rng.uniform(0.8, 1.5) * radius,
    )


def _draw(frame: np.ndarray, s: _Sprite, xx: np.ndarray, yy: np.ndarray) -> None:
    # Coordinates in the sprite's rotating frame, so the texture turns with the shape.
    dx, dy = xx - s.pos[0], yy - s.pos[1]
    c, si = math.cos(s.angle), math.sin(s.angle)
    u, v = c * dx + si * dy, -si * dx + c * dy
    mask = _shape_mask(s.shape, u, v, s.radius)
    if s.texture == "stripes":  # a square wave along u (no vector sine: see _sin_lut)
        pattern = np.floor(u * (2 / s.period)) % 2 == 0
    else:
        pattern = (np.floor(u / s.period) + np.floor(v / s.period)) % 2 == 0
    color = np.where(pattern[..., None], s.colors[0], s.colors[1]).astype(np.uint8)
    frame[mask] = color[mask]


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return u * u + v * v < r * r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.8 * r
    if shape == "diamond":
        return np.abs(u) + np.abs(v) < r
    if shape == "ring":
        d2 = u * u + v * v
        return (d2 < r * r) & (d2 > 0.3 * r * r)
    # triangle: apex at v = -r, base at v = r / 2
    return (v < 0.5 * r) & (np.abs(u) * np.sqrt(3) < v + r)


def _step(s: _Sprite, size: int) -> None:
    """Move and spin one frame, bouncing off the borders."""
    s.pos = s.pos + s.vel
    s.angle += s.spin
    for k in range(2):
        if s.pos[k] < s.radius * 0.5 or s.pos[k] > size - s.radius * 0.5:
            s.vel[k] = -s.vel[k]
            s.pos[k] = np.clip(s.pos[k], s.radius * 0.5, size - s.radius * 0.5)
