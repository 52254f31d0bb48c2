"""Frechet Video Distance: feature statistics, the distance itself, protocols, and a cache of real statistics.

Every FVD is returned with the protocol that made it (clip counts, frames, resolution, detector and its
SHA-256, real split), so a number can always be traced to how it was computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pvdm.atomic import atomic_write
from pvdm.config.evaluate import EvaluateConfig
from pvdm.metrics.features import ClipLike, I3DFeatureExtractor, as_clip_batch
from pvdm.pretrained import cache_dir

log = logging.getLogger(__name__)


# ---- statistics and the distance -----------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,), covariance (D, D) (unbiased, N - 1) and count of a feature set, in float64; and the features
    themselves (N, D) float32, which the bootstrap interval resamples (pvdm.metrics.bootstrap)."""

    mean: np.ndarray
    cov: np.ndarray
    n: int
    features: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray) -> FeatureStats:
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2 or len(feats) < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D), got shape {feats.shape}")
        return cls(feats.mean(axis=0), np.cov(feats, rowvar=False), len(feats), feats.astype(np.float32))

    def save(self, path: str | Path) -> Path:
        """Written to a temporary file beside `path`, then renamed: a reader never sees half a file."""
        with atomic_write(path) as f:  # a file object: np.savez would otherwise append ".npz" to the name
            extra = {} if self.features is None else {"features": self.features}
            np.savez(f, mean=self.mean, cov=self.cov, n=np.int64(self.n), **extra)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(path, allow_pickle=False) as data:
            features = data["features"] if "features" in data.files else None
            return cls(data["mean"], data["cov"], int(data["n"]), features)


def _nonnegative_eigvals(symmetric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix, with its numerical null space set to exactly 0.

    Round-off leaves eigenvalues of about +-dim * eps * max on directions that are truly null (covariances of
    fewer clips than feature dimensions are rank-deficient); their square roots (~1e-8 each) would add up.
    """
    eigvals, eigvecs = np.linalg.eigh((symmetric + symmetric.T) / 2)
    tol = len(eigvals) * np.finfo(np.float64).eps * max(float(np.abs(eigvals).max(initial=0.0)), 1e-300)
    return np.where(eigvals > tol, eigvals, 0.0), eigvecs


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    eigvals, eigvecs = _nonnegative_eigvals(matrix)
    return (eigvecs * np.sqrt(eigvals)) @ eigvecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for covariances, as sum(sqrt(eig(sqrt(s1) s2 sqrt(s1)))).

    The middle matrix is symmetric PSD, so `eigvalsh` is exact and stable; no general `sqrtm`, whose
    results changed across scipy releases (wrong in 1.11.2-1.12) and go complex on rank-deficient inputs.
    This is also how TF-GAN, behind the original FVD, computes it.
    """
    root = _psd_sqrt(sigma1)
    eigvals, _ = _nonnegative_eigvals(root @ sigma2 @ root)
    return float(np.sqrt(eigvals).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(s1 + s2 - 2 sqrt(s1 s2)), in float64; clamped at 0 against round-off."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched statistics: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def fvd_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


# ---- protocols and results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FVDProtocol:
    """How an FVD is computed: clips of `frames` consecutive frames, `n_real` real vs `n_fake` generated."""

    name: str = "fvd_16"
    frames: int = 16
    n_real: int = 2048
    n_fake: int = 2048
    real_split: str = "test"


def fvd_16(n_real: int = 2048, n_fake: int = 2048, real_split: str = "test") -> FVDProtocol:
    """StyleGAN-V / PVDM: 2,048 real vs 2,048 generated clips of 16 consecutive frames."""
    return FVDProtocol("fvd_16", 16, n_real, n_fake, real_split)


def fvd_long(
    frames: int = 128, n_real: int = 2048, n_fake: int = 2048, real_split: str = "test"
) -> FVDProtocol:
    """Long-video FVD (the paper's FVD128): the same, on clips of `frames` frames."""
    return FVDProtocol("fvd_long", frames, n_real, n_fake, real_split)


@dataclass(frozen=True)
class FVDResult:
    """An FVD value with everything needed to reproduce it. `resolution` is the generated clips' H x W."""

    fvd: float
    protocol: FVDProtocol
    n_real: int
    n_fake: int
    resolution: int | str
    detector: dict[str, Any] = field(default_factory=dict)
    real_stats_cached: bool = False
    real_features: np.ndarray | None = field(default=None, repr=False)  # (n_real, D): for bootstrap intervals
    fake_features: np.ndarray | None = field(default=None, repr=False)  # (n_fake, D), in the generated order

    def as_dict(self) -> dict[str, Any]:
        """Flat record for metrics files: fvd, protocol, n_real, n_fake, frames, resolution, detector, ..."""
        return {
            "fvd": self.fvd,
            "protocol": self.protocol.name,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "frames": self.protocol.frames,
            "resolution": self.resolution,
            **self.detector,
            "real_split": self.protocol.real_split,
        }


# ---- real statistics cache -----------------------------------------------------------------------------


class StatsCache:
    """Real-side FeatureStats on disk, keyed by the data's hash and everything that shapes the features."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "fvd_stats"

    @staticmethod
    def key(data_key: str, protocol: FVDProtocol, detector: dict[str, Any]) -> str:
        record = {"data": data_key, "frames": protocol.frames, "n_real": protocol.n_real, **detector}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get(self, key: str) -> FeatureStats | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return FeatureStats.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # torn or foreign file
            log.warning("recomputing: the cached statistics %s are unreadable (%s); removed", path, err)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, stats: FeatureStats) -> None:
        stats.save(self.path(key))


# ---- computing an FVD ----------------------------------------------------------------------------------


def clips_with_frames(clips: Iterable[ClipLike], frames: int) -> Iterator[ClipLike]:
    """The first `frames` frames of each clip (or batch); a shorter clip is an error, not a silent pad."""
    for item in clips:
        batch = as_clip_batch(item)
        if batch.shape[2] < frames:
            raise ValueError(f"the protocol needs {frames}-frame clips, got clips of {batch.shape[2]} frames")
        yield batch[:, :, :frames]


def _resolution(batch_shape: tuple[int, ...]) -> int | str:
    h, w = batch_shape[-2:]
    return int(h) if h == w else f"{h}x{w}"


def real_stats(
    clips: Iterable[ClipLike],
    protocol: FVDProtocol,
    extractor: I3DFeatureExtractor,
    data_key: str | None = None,
    cache: StatsCache | None = None,
) -> tuple[FeatureStats, bool]:
    """Statistics of up to protocol.n_real real clips; read from / written to `cache` when `data_key` is given.

    Returns (stats, came_from_cache). A cache hit never touches `clips`, so lazy decoding is skipped too.
    """
    key = StatsCache.key(data_key, protocol, extractor.describe()) if data_key and cache else None
    if (
        key and (hit := cache.get(key)) is not None and hit.features is not None
    ):  # older entries lack features
        return hit, True
    stats = FeatureStats.from_features(
        extractor.extract(clips_with_frames(clips, protocol.frames), protocol.n_real)
    )
    if key:
        cache.put(key, stats)
    return stats, False


def compute_fvd(
    real_clips: Iterable[ClipLike],
    fake_clips: Iterable[ClipLike],
    protocol: FVDProtocol | None = None,
    extractor: I3DFeatureExtractor | None = None,
    real_data_key: str | None = None,
    cache: StatsCache | None = None,
) -> FVDResult:
    """FVD between real and generated clips under `protocol` (default fvd_16).

    Clips follow pvdm.metrics.features: uint8 numpy (T, H, W, 3) / (B, T, H, W, 3) or tensors
    (3, T, H, W) / (B, 3, T, H, W) in [-1, 1]; longer clips are cut to their first `protocol.frames`.
    Give `real_data_key` (e.g. the DVC hash of the real split) to cache real statistics in `cache`
    (default: the user cache dir).
    """
    protocol = protocol or fvd_16()
    extractor = extractor or I3DFeatureExtractor()
    cache = cache or (StatsCache() if real_data_key else None)
    real, cached = real_stats(real_clips, protocol, extractor, real_data_key, cache)
    shapes: list[tuple[int, ...]] = []
    fake_stream = _recording_shapes(clips_with_frames(fake_clips, protocol.frames), shapes)
    fake = FeatureStats.from_features(extractor.extract(fake_stream, protocol.n_fake))
    _warn_if_short(protocol, real.n, fake.n)
    return FVDResult(
        fvd=fvd_from_stats(real, fake),
        protocol=protocol,
        n_real=real.n,
        n_fake=fake.n,
        resolution=_resolution(shapes[0]),
        detector=extractor.describe(),
        real_stats_cached=cached,
        real_features=real.features,
        fake_features=fake.features,
    )


def _recording_shapes(batches: Iterator[Any], shapes: list[tuple[int, ...]]) -> Iterator[Any]:
    for batch in batches:
        shapes.append(tuple(batch.shape))
        yield batch


def _warn_if_short(protocol: FVDProtocol, n_real: int, n_fake: int) -> None:
    if n_real < protocol.n_real or n_fake < protocol.n_fake:
        log.warning(
            "%s asked for %d real / %d fake clips but got %d / %d; the result records the counts used",
            protocol.name,
            protocol.n_real,
            protocol.n_fake,
            n_real,
            n_fake,
        )


def protocols_from_config(cfg: EvaluateConfig) -> dict[str, FVDProtocol]:
    """The `evaluate` section's two protocols, by metric name: fvd_16 and fvd_long."""
    return {
        "fvd_16": FVDProtocol("fvd_16", cfg.fvd_frames, cfg.fvd_num_real, cfg.fvd_num_fake, cfg.real_split),
        "fvd_long": fvd_long(cfg.fvd_long_frames, cfg.fvd_long_num, cfg.fvd_long_num, cfg.real_split),
    }
