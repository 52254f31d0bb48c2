"""FVD on real clips from ../shared/data/videos: zero on identical sets, symmetric, growing with noise.

Clips are 16 frames, downscaled to 64x64 and fed without the 224 resize to keep CPU time small; the detector
and the distance are the ones the protocol uses.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.folders import folder_clips
from pvdm.metrics.fvd import FeatureStats, fvd_from_stats

NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4)  # Gaussian std in [-1, 1] units


def small_float_clip(clip: np.ndarray, size: int = 64) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (3, T, size, size) in [-1, 1]."""
    frames = rearrange(torch.from_numpy(clip).float() / 127.5 - 1, "t h w c -> t c h w")
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return rearrange(frames, "t c h w -> c t h w").clamp(-1, 1)


@functools.cache
def load_real_clips(videos: Path) -> torch.Tensor:
    clips = [small_float_clip(c) for c in folder_clips(videos, frames=16, num=24)]
    assert len(clips) == 24
    return torch.stack(clips)


@pytest.fixture
def real_clips(shared_videos: Path) -> torch.Tensor:
    """24 clips of 16 frames, round-robin over the shared videos (decoded once per session)."""
    return load_real_clips(shared_videos)


@pytest.fixture(scope="module")
def extractor() -> I3DFeatureExtractor:
    return I3DFeatureExtractor(batch_size=8, resize=False)


def stats(extractor: I3DFeatureExtractor, clips: torch.Tensor) -> FeatureStats:
    return FeatureStats.from_features(extractor.extract([clips]))


@pytest.mark.slow
def test_fvd_is_zero_on_identical_sets_and_symmetric(real_clips, extractor):
    first, second = stats(extractor, real_clips[:12]), stats(extractor, real_clips[12:])
    assert fvd_from_stats(first, first) == pytest.approx(0.0, abs=1e-6)
    forward, backward = fvd_from_stats(first, second), fvd_from_stats(second, first)
    assert forward > 1.0
    assert forward == pytest.approx(backward, rel=1e-9)


@pytest.mark.slow
def test_fvd_grows_with_noise(real_clips, extractor):
    generator = torch.Generator().manual_seed(0)
    clean = stats(extractor, real_clips)
    values = []
    for sigma in NOISE_LEVELS:
        noise = torch.randn(real_clips.shape, generator=generator)
        values.append(fvd_from_stats(clean, stats(extractor, (real_clips + sigma * noise).clamp(-1, 1))))
    assert values[0] > 0
    assert values == sorted(values) and len(set(values)) == len(values), values
