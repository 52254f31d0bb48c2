"""Bootstrap intervals of FVD over features: exact low-rank distance, seeded intervals, the paired difference."""

from __future__ import annotations

import numpy as np
import pytest

from pvdm.metrics.bootstrap import BootstrapSpec, fvd_interval, fvd_of_features, paired_difference
from pvdm.metrics.fvd import FeatureStats, fvd_from_stats

SPEC = BootstrapSpec(resamples=200, confidence=0.9, seed=3)


def features(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 400)) * rng.uniform(0.5, 2.0, 400) + shift).astype(np.float32)


@pytest.mark.parametrize(("n", "m"), [(32, 32), (40, 24), (500, 450)])
def test_low_rank_fvd_equals_the_full_covariance_distance(n: int, m: int) -> None:
    real, fake = features(n, seed=1), features(m, shift=0.3, seed=2)
    full = fvd_from_stats(FeatureStats.from_features(real), FeatureStats.from_features(fake))
    assert fvd_of_features(real, fake) == pytest.approx(full, rel=1e-9)


def test_interval_is_seeded_and_contains_the_estimate() -> None:
    real, fake = features(32, seed=1), features(32, shift=0.2, seed=2)
    first, again = fvd_interval(real, fake, SPEC), fvd_interval(real, fake, SPEC)
    assert first == again
    assert first.low < first.point < first.high
    assert first.point == pytest.approx(fvd_of_features(real, fake))
    other = fvd_interval(real, fake, BootstrapSpec(200, 0.9, seed=4))
    assert other.point == first.point and other.as_list() != first.as_list()
    wider = fvd_interval(real, fake, BootstrapSpec(200, 0.99, seed=3))
    assert wider.low < first.low and wider.high > first.high


def test_identical_models_differ_by_exactly_zero() -> None:
    real, fake = features(32, seed=1), features(32, shift=0.2, seed=2)
    diff = paired_difference(real, fake, fake.copy(), SPEC)
    assert (diff.point, diff.low, diff.high) == (0.0, 0.0, 0.0)


def test_paired_difference_sees_a_clearly_better_model_and_not_a_resampled_copy() -> None:
    real = features(32, seed=1)
    close, far = features(32, shift=0.05, seed=2), features(32, shift=1.0, seed=2)
    better = paired_difference(real, close, far, SPEC)
    assert better.high < 0 and better.low <= better.point <= better.high
    assert paired_difference(real, far, close, SPEC).low > 0
    noise = paired_difference(real, features(32, seed=5), features(32, seed=6), SPEC)  # same distribution
    assert noise.low < 0 < noise.high


def test_paired_difference_needs_paired_sets() -> None:
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(features(8), features(8), features(6), SPEC)
