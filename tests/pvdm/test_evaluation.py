"""pvdm/evaluation.py on tiny tensors and a tiny clip store: real-clip selection, long windows, motion, the noise
baseline from the family's LatentSpec, reconstructions and the autoencoder check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.config.autoencoder import AEValidationConfig
from pvdm.data.clips import ClipStore
from pvdm.data.latents import LatentStore, cache_latents
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.evaluation import (
    decode_noise_latents,
    motion,
    real_split_indices,
    reconstruct,
    sized,
    validate_autoencoder,
)
from pvdm.families.identity.build import IdentityAutoencoder
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.metrics.fvd import FVDProtocol

FRAMES, SIZE = 4, 16


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    """Three videos of 12 frames: three back-to-back 4-frame clips each, all in the train split."""
    root = tmp_path_factory.mktemp("eval")
    generate_videos(root / "raw", 3, size=SIZE, frames=12, fps=8, seed=5)
    run_preprocess(root / "raw", root / "clips", DataConfig(resolution=SIZE, frames=FRAMES),
                   PreprocessConfig(test_fraction=0.0), progress=False)  # fmt: skip
    return ClipStore(root / "clips")


def test_real_split_falls_back_to_train_when_the_split_is_empty(store: ClipStore) -> None:
    assert real_split_indices(store, "test") == ("train", store.indices("train"))
    assert real_split_indices(store, "train") == ("train", list(range(9)))


def test_real_windows_cross_clip_boundaries_within_one_video(store: ClipStore) -> None:
    from pvdm.metrics.windows import run_window, store_runs

    runs = store_runs(store, store.indices("train"))
    assert [r.clips for r in runs] == [(0, 1, 2), (3, 4, 5), (6, 7, 8)] and runs[0].frames == 12
    window = run_window(store, runs[1], start=2, frames=2 * FRAMES)  # frames 2..9 of the second video
    joined = np.concatenate([store[3], store[4], store[5]])
    np.testing.assert_array_equal(window, joined[2:10])


def test_motion_is_zero_for_frozen_clips_and_measures_frame_differences() -> None:
    frozen = np.full((4, 2, 2, 3), 100, dtype=np.uint8)
    ramp = np.stack([np.full((2, 2, 3), 51 * t, dtype=np.uint8) for t in range(4)])  # +51 per frame
    assert motion([frozen], 10) == 0.0
    assert motion([ramp, frozen, ramp], 1) == pytest.approx(51 / 255)  # `limit` clips only
    assert np.isnan(motion([], 5))


def test_sized_caps_the_protocol_at_what_exists() -> None:
    p = sized(FVDProtocol("fvd_16", 16, 2048, 2048, "test"), n_real=40, n_fake=3000)
    assert (p.name, p.frames, p.n_real, p.n_fake, p.real_split) == ("fvd_16", 16, 40, 2048, "test")


class Halving(VideoAutoencoder):
    """A tiny family member with a normal prior: decode(z) = z / 2 on the pixel grid."""

    frames, resolution = FRAMES, SIZE

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    @property
    def latent_spec(self) -> LatentSpec:
        return LatentSpec((3, FRAMES, SIZE, SIZE), bound=None, prior="normal", dtype="float32")

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video / self.scale

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.scale


def test_noise_baseline_decodes_a_prior_sample_of_the_family() -> None:
    uniform = list(decode_noise_latents(IdentityAutoencoder(FRAMES, SIZE), 5, 2, torch.Generator().manual_seed(0),
                                        torch.device("cpu")))  # fmt: skip
    assert len(uniform) == 5 and uniform[0].shape == (FRAMES, SIZE, SIZE, 3) and uniform[0].dtype == np.uint8
    spread = np.concatenate([u.ravel() for u in uniform]).astype(float)
    assert spread.min() < 20 and spread.max() > 235  # uniform over the whole pixel range
    normal = list(
        decode_noise_latents(Halving(), 5, 5, torch.Generator().manual_seed(0), torch.device("cpu"))
    )
    values = np.concatenate([n.ravel() for n in normal]).astype(float) / 127.5 - 1
    assert abs(values.std() - 0.5) < 0.05  # N(0, 1) decoded at half scale, not uniform


def test_reconstructions_pair_each_clip_with_its_decoding(store: ClipStore) -> None:
    clips = [store[i] for i in range(5)]
    pairs = list(reconstruct(Halving(), clips, batch_size=2, device=torch.device("cpu")))
    assert [p[0].shape[0] for p in pairs] == [2, 2, 1]
    for x, rec in pairs:
        torch.testing.assert_close(rec, x)  # encode then decode undoes itself
        assert x.min() >= -1 and x.max() <= 1


def test_autoencoder_check_scores_held_out_clips_and_draws_the_grid(store: ClipStore) -> None:
    clips = [store[i] for i in range(6)]
    scores, grid = validate_autoencoder(
        IdentityAutoencoder(FRAMES, SIZE), clips, AEValidationConfig(num_clips=3)
    )
    assert scores["val_psnr"] == pytest.approx(100.0) and scores["val_lpips"] == pytest.approx(0.0, abs=1e-6)
    assert grid.shape == (FRAMES, 2 * SIZE, 3 * SIZE, 3)  # originals over reconstructions, 3 side by side
    np.testing.assert_array_equal(grid[:, :SIZE], grid[:, SIZE:])


def test_identity_family_caches_a_manifest_pointing_at_the_clips(store: ClipStore, tmp_path: Path) -> None:
    latents = cache_latents(IdentityAutoencoder(FRAMES, SIZE), store.root, tmp_path / "latents",
                            autoencoder_sha256="0" * 64)  # fmt: skip
    assert not (tmp_path / "latents" / "latents.npy").exists() and latents.meta["storage"] == "clips"
    again = LatentStore(tmp_path / "latents")
    assert len(again) == len(store) and again.spec.shape == (3, FRAMES, SIZE, SIZE)
    expected = torch.from_numpy(store[4].astype(np.float32)).permute(3, 0, 1, 2) / 127.5 - 1
    torch.testing.assert_close(again.latent(4), expected)
    assert list(again.manifest["previous"][:3]) == [-1, 0, 1] and set(again.manifest["label"]) == {-1}


def test_real_windows_follow_the_class_mix_of_class_conditional_samples(tmp_path: Path) -> None:
    import json

    from pvdm.evaluation import generated_videos, real_set

    generate_videos(tmp_path / "raw", 4, size=SIZE, frames=16, fps=8, seed=1, classes=True)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", DataConfig(resolution=SIZE, frames=FRAMES),
                   PreprocessConfig(test_fraction=0.0, labels="folder"), progress=False)  # fmt: skip
    store = ClipStore(tmp_path / "clips")  # 4 videos of 16 frames: 2 checkers (label 0), 2 stripes (label 1)
    samples = tmp_path / "samples"
    (samples / "clips").mkdir(parents=True)
    plain = real_set(store, "train", samples, seed=0)
    assert plain.class_counts == {} and plain.record()["real_selection"] == "all videos"
    (samples / "labels.json").write_text(json.dumps({"names": ["checkers", "stripes"],
                                                     "clips": ["stripes"] * 3 + ["checkers"]}))  # fmt: skip
    matched = real_set(store, "train", samples, seed=0)
    assert (
        matched.class_counts == {1: 3, 0: 1} and "stratified by class" in matched.record()["real_selection"]
    )
    windows = list(matched.windows(FRAMES, 8))
    labels = [_label_of(store, w) for w in windows]
    assert labels.count("stripes") == 6 and labels.count("checkers") == 2  # 3:1 like the generated clips
    assert matched.key("data") != plain.key("data")  # the statistics cache tells them apart

    frames = np.zeros((3, FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    np.save(samples / "clips" / "frames.npy", frames)
    n, videos, source = generated_videos(samples / "clips")
    assert (
        n == 3 and "sampler's uint8 frames" in source and all(v.shape == frames.shape[1:] for v in videos())
    )


def _label_of(store: ClipStore, window: np.ndarray) -> str:
    """The class of the video a window was cut from (windows are byte-exact copies of stored frames)."""
    for i in range(len(store)):
        clip = np.asarray(store[i])
        if any(np.array_equal(window[0], frame) for frame in clip):
            return store.label_names[store.labels()[i]]
    raise AssertionError("window not found in the store")
