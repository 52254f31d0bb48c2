"""How much an FVD moves by chance: seeded bootstrap intervals over I3D features, alone and paired.

One FVD from a few dozen generated clips varies a lot with which clips were drawn, so a number alone cannot say
whether one model beats another. Resampling the features (not the videos: no I3D pass is repeated) gives:

    fvd_interval(real, fake, ...)                  -> Interval   the FVD's bootstrap interval
    paired_difference(real, fake_a, fake_b, ...)   -> Interval   of fvd(a) - fvd(b), the same resamples for both

Paired: each resample draws one set of real indices and one set of fake indices, used for both models; fake clip i
of both models came from the same sampling seed, so the noise they share cancels in the difference. Identical
inputs give a difference of exactly 0 in every resample.

The interval is the percentile interval shifted by the bootstrap's bias (resampling with replacement repeats clips,
which inflates an FVD): [point - (mean - q_low), point + (q_high - mean)], so it is centred where the estimate is.

FVD of features uses a low-rank identity (exact, not an approximation): with centred features A (n, D) and B (m, D),
tr sqrt(S_a S_b) is the nuclear norm of A B^T / sqrt((n-1)(m-1)), an (n, m) matrix, so a resample costs an SVD of
n x m instead of eigen-decompositions of D x D (D = 400 for I3D). With more clips than dimensions (the paper's
2,048) the D x D route (pvdm.metrics.fvd) is the cheaper one and is used instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pvdm.metrics.fvd import frechet_distance

INTERVAL_RULE = "bias-corrected percentile bootstrap over I3D features (real and generated resampled)"


@dataclass(frozen=True)
class BootstrapSpec:
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def record(self) -> dict[str, float | int | str]:
        return {"resamples": self.resamples, "confidence": self.confidence, "seed": self.seed,
                "interval": INTERVAL_RULE}  # fmt: skip


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def fvd_of_features(real: np.ndarray, fake: np.ndarray) -> float:
    """The Frechet distance between two feature sets (N, D) and (M, D), by the low-rank identity above."""
    a, b = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    if len(a) * len(b) > a.shape[1] ** 2:
        return frechet_distance(mu_a, np.cov(a, rowvar=False), mu_b, np.cov(b, rowvar=False))
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    value = diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2.0 * cross
    return max(float(value), 0.0)


def _indices(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, n, n)


def _interval(point: float, draws: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2
    q_low, q_high = np.quantile(draws, [alpha, 1.0 - alpha])
    mean = float(draws.mean())
    return Interval(point, point - (mean - float(q_low)), point + (float(q_high) - mean))


def fvd_interval(real: np.ndarray, fake: np.ndarray, spec: BootstrapSpec) -> Interval:
    """The FVD of `real` vs `fake` features and its bootstrap interval (seeded: the same inputs, the same bounds)."""
    rng = np.random.default_rng(spec.seed)
    draws = np.array([
        fvd_of_features(real[_indices(rng, len(real))], fake[_indices(rng, len(fake))])
        for _ in range(spec.resamples)
    ])  # fmt: skip
    return _interval(fvd_of_features(real, fake), draws, spec.confidence)


def paired_difference(
    real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, spec: BootstrapSpec
) -> Interval:
    """fvd(real, fake_a) - fvd(real, fake_b) with its paired bootstrap interval; fake_a[i] and fake_b[i] must come
    from the same sampling seed (the same row index), so both sets need the same length."""
    if fake_a.shape != fake_b.shape:
        raise ValueError(f"paired features need the same shape, got {fake_a.shape} and {fake_b.shape}")
    rng = np.random.default_rng(spec.seed)
    draws = []
    for _ in range(spec.resamples):
        r, f = _indices(rng, len(real)), _indices(rng, len(fake_a))
        draws.append(fvd_of_features(real[r], fake_a[f]) - fvd_of_features(real[r], fake_b[f]))
    point = fvd_of_features(real, fake_a) - fvd_of_features(real, fake_b)
    return _interval(point, np.array(draws), spec.confidence)
