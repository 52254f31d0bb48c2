"""The I3D port and its feature extractor: TF "SAME" padding, input conventions, preprocessing, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pvdm.metrics.features import I3DFeatureExtractor, as_clip_batch, full_fp32, rebatch
from pvdm.metrics.i3d import InceptionI3d, same_padding
from pvdm.pretrained import I3D_KINETICS400


@pytest.fixture(scope="module")
def extractor() -> I3DFeatureExtractor:
    return I3DFeatureExtractor(batch_size=3, resize=False)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (
            (16, 224, 224),
            (7, 7, 7),
            (2, 2, 2),
            [2, 3, 2, 3, 2, 3],
        ),  # conv 1a: the extra pixel goes at the end
        ((8, 112, 112), (1, 3, 3), (1, 2, 2), [0, 1, 0, 1, 0, 0]),  # max pool 2a
        ((8, 28, 28), (3, 3, 3), (1, 1, 1), [1, 1, 1, 1, 1, 1]),
        ((4, 14, 14), (2, 2, 2), (2, 2, 2), [0, 0, 0, 0, 0, 0]),  # max pool 5a
        ((5, 7, 7), (3, 3, 3), (2, 2, 2), [1, 1, 1, 1, 1, 1]),  # odd sizes: symmetric
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected  # F.pad order: (w_lo, w_hi, h_lo, h_hi, t_lo, t_hi)


def test_every_pretrained_tensor_is_loaded(extractor):
    fresh = InceptionI3d().state_dict()
    loaded = extractor.model.state_dict()
    assert fresh.keys() == loaded.keys()
    changed = [k for k in fresh if not torch.equal(fresh[k], loaded[k])]
    assert len(changed) == len(fresh)  # none left at its zero initialisation
    assert extractor.sha256 == I3D_KINETICS400.sha256


def test_numpy_channels_last_and_torch_channels_first_agree(extractor):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(2, 8, 32, 32, 3), dtype=np.uint8)
    as_tensor = torch.from_numpy(clips).permute(0, 4, 1, 2, 3)
    assert torch.equal(as_clip_batch(clips), as_tensor)
    assert as_clip_batch(clips[0]).shape == (1, 3, 8, 32, 32)
    from_numpy = extractor.features(clips)
    from_float = extractor.features(as_tensor.float() / 127.5 - 1)  # float input is taken as [-1, 1]
    assert from_numpy.shape == (2, 400) and from_numpy.dtype == np.float64
    np.testing.assert_allclose(from_numpy, from_float, atol=1e-4)
    assert not np.allclose(from_numpy[0], from_numpy[1], atol=1e-2)  # different clips, different features


def test_rescale_and_resize(extractor):
    uint8 = torch.full((1, 3, 2, 10, 12), 255, dtype=torch.uint8)
    assert extractor.preprocess(uint8).max().item() == pytest.approx(1.0)
    assert extractor.preprocess(torch.zeros_like(uint8)).min().item() == pytest.approx(-1.0)
    resizing = I3DFeatureExtractor(resize=True)
    resized = resizing.preprocess(uint8.float() / 127.5 - 1)
    assert resized.shape == (1, 3, 2, 224, 224)
    assert resized.dtype == torch.float32


def test_bad_shapes_say_which_layout_is_expected():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        as_clip_batch(np.zeros((8, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(3, T, H, W\)"):
        as_clip_batch(torch.zeros(2, 8, 32, 32, 3))


def test_rebatch_regroups_and_limits():
    items = [torch.zeros(2, 3, 4, 8, 8), torch.zeros(3, 3, 4, 8, 8), np.zeros((4, 8, 8, 3), np.uint8)]
    assert [len(b) for b in rebatch(items, batch_size=4)] == [4, 2]
    assert [len(b) for b in rebatch(items, batch_size=2, limit=3)] == [2, 1]
    mixed = [torch.zeros(1, 3, 4, 8, 8), torch.zeros(1, 3, 4, 8, 8), torch.zeros(2, 3, 4, 6, 10)]
    assert [tuple(b.shape[-2:]) for b in rebatch(mixed, batch_size=3)] == [(8, 8), (6, 10)]


def test_extract_matches_batchwise_features_and_respects_limit(extractor):
    clips = torch.rand(4, 3, 8, 32, 32) * 2 - 1
    together = extractor.extract([clips[:1], clips[1:]], limit=3)
    assert together.shape == (3, 400)
    np.testing.assert_allclose(together, extractor.features(clips[:3]), atol=1e-4)


def test_features_run_in_full_fp32_and_restore_the_callers_setting():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with full_fp32():
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
