"""Incremental latent caching: after new videos, only their clips (and windows) are encoded; everything else is
copied from the previous store, and the result equals a fresh encoding of the whole store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm.config import AutoencoderConfig, DataConfig, PreprocessConfig
from pvdm.data.latents import LatentStore, cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.families.registry import build_autoencoder

FRAMES, SIZE = 4, 16
DATA = DataConfig(resolution=SIZE, frames=FRAMES)


class CountingEncoder(torch.nn.Module):
    """A real (tiny) triplane autoencoder that counts the clips it encodes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        model = {"type": "triplane", "width": 16, "heads": 2, "patch_size": 4, "latent_channels": 2,
                 "encoder_depth": 1, "decoder_depth": 1, "projection_depth": 1}  # fmt: skip
        torch.manual_seed(seed)
        self.inner = build_autoencoder(AutoencoderConfig(model=model), DATA).eval()
        self.latent_spec, self.caches_latents, self.encoded = self.inner.latent_spec, True, 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.encoded += len(x)
        return self.inner.encode(x)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same folder preprocessed with 4 videos (`before`), then with 2 more added (`after`)."""
    root = tmp_path_factory.mktemp("reuse")
    generate_videos(root / "all", 6, size=SIZE, frames=12, fps=8, seed=5)
    videos = sorted((root / "all").glob("*.mp4"))
    (root / "raw").mkdir()
    for video in videos[:4]:
        shutil.copy(video, root / "raw" / video.name)
    cfg = PreprocessConfig(test_fraction=0.3)
    run_preprocess(root / "raw", root / "clips", DATA, cfg, progress=False)
    shutil.copytree(root / "clips", root / "before")
    for video in videos[4:]:
        shutil.copy(video, root / "raw" / video.name)
    run_preprocess(root / "raw", root / "clips", DATA, cfg, progress=False)
    return root / "before", root / "clips"


def cache(model: CountingEncoder, clips: Path, out: Path, sha: str = "a" * 64) -> LatentStore:
    return cache_latents(model, clips, out, autoencoder_sha256=sha, jitter_windows=1, progress=False,
                         device=torch.device("cpu"))  # fmt: skip


def test_new_videos_only_encode_their_own_clips_and_the_store_equals_a_fresh_one(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    before, after = stores
    model = CountingEncoder()
    old = cache(model, before, tmp_path / "latents")
    first = model.encoded
    assert first == len(old) > 0

    new = cache(model, after, tmp_path / "latents")  # the same store updated, as the DVC stage does
    fresh = cache(CountingEncoder(), after, tmp_path / "fresh")
    encoded_again = model.encoded - first
    added = len(new) - len(old)
    assert added > 0 and encoded_again == added  # the new videos' rows, nothing else
    assert list(new.manifest["key"]) == list(fresh.manifest["key"])
    np.testing.assert_array_equal(np.asarray(new.latents), np.asarray(fresh.latents))


def test_another_autoencoder_encodes_everything_again(stores: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = stores
    cache(CountingEncoder(), before, tmp_path / "latents", sha="a" * 64)
    other = CountingEncoder(seed=1)
    store = cache(other, after, tmp_path / "latents", sha="b" * 64)  # a retrained autoencoder
    assert other.encoded == len(store)
    fresh = cache(CountingEncoder(seed=1), after, tmp_path / "fresh", sha="b" * 64)
    np.testing.assert_array_equal(np.asarray(store.latents), np.asarray(fresh.latents))


def test_changed_cutting_rules_never_reuse_a_row(stores: tuple[Path, Path], tmp_path: Path) -> None:
    """Clips cut under other rules live in other shards: their keys differ, so no stale latent is copied."""
    _, after = stores
    model = CountingEncoder()
    first = cache(model, after, tmp_path / "latents")
    first_keys = set(first.manifest["key"])
    recut = tmp_path / "recut"
    raw = after.parent / "raw"
    run_preprocess(raw, recut, DATA, PreprocessConfig(test_fraction=0.3, frame_stride=2), progress=False)
    count = model.encoded
    store = cache(model, recut, tmp_path / "latents")
    assert model.encoded - count == len(store) > 0
    assert not set(store.manifest["key"]) & first_keys
