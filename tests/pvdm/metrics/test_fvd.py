"""compute_fvd: protocol records, frame trimming, real-statistics cache; the reference check against TF."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pvdm.config import EvaluateConfig
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.fvd import (
    FVDProtocol,
    StatsCache,
    compute_fvd,
    fvd_16,
    fvd_long,
    protocols_from_config,
)
from pvdm.pretrained import I3D_KINETICS400


@pytest.fixture(scope="module")
def small_extractor() -> I3DFeatureExtractor:
    """Full I3D, but fed 32x32 frames without the 224 resize: the logic under test, at 2% of the CPU time."""
    return I3DFeatureExtractor(batch_size=4, resize=False)


def uint8_clips(seed: int, n: int, frames: int = 8, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(frames, size, size, 3), dtype=np.uint8) for _ in range(n)]


class NotToBeRead:
    """An iterable that fails the test when anything iterates it (a cache hit must not decode real clips)."""

    def __iter__(self):
        raise AssertionError("real clips were read despite cached statistics")


def test_result_records_its_protocol(small_extractor):
    protocol = FVDProtocol("fvd_8", frames=8, n_real=5, n_fake=4, real_split="test")
    real, fake = uint8_clips(0, 6, frames=12), uint8_clips(1, 6)  # real clips are longer: cut to 8 frames
    result = compute_fvd(real, fake, protocol, small_extractor)
    record = result.as_dict()
    assert record["fvd"] > 0
    assert (record["n_real"], record["n_fake"], record["frames"]) == (5, 4, 8)
    assert record["resolution"] == 32
    assert record["detector"] == "i3d_kinetics400_logits"
    assert record["detector_sha256"] == I3D_KINETICS400.sha256
    assert record["real_split"] == "test" and record["protocol"] == "fvd_8"


def test_too_short_clips_are_an_error(small_extractor):
    with pytest.raises(ValueError, match="16-frame clips"):
        compute_fvd(uint8_clips(0, 3), uint8_clips(1, 3), fvd_16(3, 3), small_extractor)


def test_real_statistics_are_cached_by_data_key_and_protocol(small_extractor, tmp_path):
    cache = StatsCache(tmp_path)
    protocol = FVDProtocol("fvd_8", frames=8, n_real=4, n_fake=4)
    real, fake = uint8_clips(0, 4), uint8_clips(1, 4)
    first = compute_fvd(real, fake, protocol, small_extractor, real_data_key="data-v1", cache=cache)
    again = compute_fvd(NotToBeRead(), fake, protocol, small_extractor, real_data_key="data-v1", cache=cache)
    assert not first.real_stats_cached and again.real_stats_cached
    assert again.fvd == pytest.approx(first.fvd, rel=1e-12)
    # another data hash or another protocol must not hit the same entry
    with pytest.raises(AssertionError, match="were read"):
        compute_fvd(NotToBeRead(), fake, protocol, small_extractor, real_data_key="data-v2", cache=cache)
    other = FVDProtocol("fvd_8", frames=8, n_real=3, n_fake=4)
    with pytest.raises(AssertionError, match="were read"):
        compute_fvd(NotToBeRead(), fake, other, small_extractor, real_data_key="data-v1", cache=cache)


def test_float_tensor_batches_are_accepted(small_extractor):
    real = [torch.rand(3, 3, 8, 32, 32) * 2 - 1]
    fake = [torch.rand(2, 3, 8, 32, 32) * 2 - 1, torch.rand(1, 3, 8, 32, 32) * 2 - 1]
    result = compute_fvd(real, fake, FVDProtocol("fvd_8", 8, 3, 3), small_extractor)
    assert (result.n_real, result.n_fake) == (3, 3)


def test_protocols_from_config():
    cfg = EvaluateConfig(fvd_num_real=256, fvd_num_fake=128, fvd_long_frames=64, fvd_long_num=32)
    protocols = protocols_from_config(cfg)
    assert protocols["fvd_16"] == fvd_16(256, 128, "test")
    assert protocols["fvd_long"] == fvd_long(64, 32, 32, "test")


def reference_clips(seed: int):
    """np.random.RandomState(seed).rand(128, 16, 224, 224, 3) as float32, 8 clips at a time (same numbers)."""
    rs = np.random.RandomState(seed)
    for _ in range(16):
        yield rs.rand(8, 16, 224, 224, 3).astype(np.float32)


@pytest.mark.slow
def test_reference_fvd_matches_tensorflow():
    """The published FVD check: TensorFlow's original gives 10.13808537 on these inputs (no rescale/resize)."""
    extractor = I3DFeatureExtractor(batch_size=8, rescale=False, resize=False)
    protocol = FVDProtocol("reference", frames=16, n_real=128, n_fake=128)
    result = compute_fvd(reference_clips(1), reference_clips(2), protocol, extractor)
    assert result.n_real == result.n_fake == 128
    assert result.fvd == pytest.approx(10.1381, abs=1e-3)


def test_a_torn_cache_entry_is_detected_removed_and_recomputed(tmp_path) -> None:
    import numpy as np

    from pvdm.metrics.fvd import FeatureStats, StatsCache

    cache = StatsCache(tmp_path)
    stats = FeatureStats.from_features(np.random.default_rng(0).normal(size=(5, 3)))
    cache.put("k", stats)
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]  # written atomically: no temporary left
    np.testing.assert_array_equal(cache.get("k").cov, stats.cov)
    data = cache.path("k").read_bytes()
    cache.path("k").write_bytes(data[: len(data) // 2])  # a kill mid-write, before atomic saves
    assert (
        cache.get("k") is None and not cache.path("k").exists()
    )  # reported, removed: the next run recomputes
    cache.put("k", stats)
    assert cache.get("k").n == 5
