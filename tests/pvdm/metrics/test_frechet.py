"""Frechet distance in float64: closed forms, symmetry, zero on identical sets, rank-deficient covariances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from pvdm.metrics.fvd import FeatureStats, frechet_distance, fvd_from_stats, trace_sqrt_product


def random_features(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


def test_diagonal_covariances_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected, rel=1e-12)


def test_full_rank_case_matches_scipy_sqrtm():
    a, b = random_features(0, 500, 20), random_features(1, 500, 20, shift=0.3)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_identical_sets_give_zero_and_order_does_not_matter():
    # N < D: rank-deficient covariances, the FVD situation with few clips and 400 logits
    a, b = (
        FeatureStats.from_features(random_features(2, 50, 400)),
        FeatureStats.from_features(random_features(3, 60, 400)),
    )
    assert fvd_from_stats(a, a) == pytest.approx(0.0, abs=1e-8 * np.trace(a.cov))
    ab, ba = fvd_from_stats(a, b), fvd_from_stats(b, a)
    assert ab > 0
    assert ab == pytest.approx(ba, rel=1e-9)


def test_trace_sqrt_product_of_a_matrix_with_itself_is_its_trace():
    s = np.cov(random_features(4, 30, 64), rowvar=False)  # rank 29 of 64
    assert trace_sqrt_product(s, s) == pytest.approx(np.trace(s), rel=1e-9)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_stats_round_trip_and_match_numpy(tmp_path):
    feats = random_features(5, 40, 8)
    stats = FeatureStats.from_features(feats)
    np.testing.assert_allclose(stats.mean, feats.mean(0))
    np.testing.assert_allclose(stats.cov, np.cov(feats, rowvar=False))
    loaded = FeatureStats.load(stats.save(tmp_path / "real.npz"))
    assert loaded.n == 40 and loaded.mean.dtype == np.float64
    np.testing.assert_array_equal(loaded.cov, stats.cov)
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats.from_features(feats[:1])
