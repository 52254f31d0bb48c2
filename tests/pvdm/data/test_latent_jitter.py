"""Temporal jitter in the latent store: windows between consecutive clips, cached once, unconditional targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm.config import AutoencoderConfig, DataConfig, PreprocessConfig
from pvdm.data.clips import ClipStore, to_model_tensor
from pvdm.data.latents import LatentPairDataset, LatentStore, cache_latents, jitter_offsets
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos
from pvdm.families.identity.build import IdentityAutoencoder
from pvdm.families.registry import build_autoencoder

FRAMES, SIZE = 4, 16


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    """Three videos of 12 frames, 4-frame clips back to back: 9 clips, 6 consecutive pairs; 2 videos in train."""
    root = tmp_path_factory.mktemp("jitter")
    generate_videos(root / "raw", 3, size=SIZE, frames=12, fps=8, seed=3)
    run_preprocess(root / "raw", root / "clips", DataConfig(resolution=SIZE, frames=FRAMES),
                   PreprocessConfig(test_fraction=0.3), progress=False)  # fmt: skip
    return ClipStore(root / "clips")


def test_offsets_are_evenly_spaced_strictly_inside_the_clip() -> None:
    assert jitter_offsets(16, 1) == [8] and jitter_offsets(16, 3) == [4, 8, 12]
    assert (
        jitter_offsets(4, 2) == [1, 3] and jitter_offsets(4, 10) == [1, 2, 3] and jitter_offsets(16, 0) == []
    )


def tiny_triplane() -> torch.nn.Module:
    model = {"type": "triplane", "width": 16, "heads": 2, "patch_size": 4, "latent_channels": 2,
             "encoder_depth": 1, "decoder_depth": 1, "projection_depth": 1}  # fmt: skip
    torch.manual_seed(0)
    return build_autoencoder(
        AutoencoderConfig(model=model), DataConfig(resolution=SIZE, frames=FRAMES)
    ).eval()


@pytest.mark.parametrize("family", ["identity", "triplane"])
def test_windows_hold_the_frames_between_two_consecutive_clips(
    store: ClipStore, tmp_path: Path, family: str
) -> None:
    autoencoder = IdentityAutoencoder(FRAMES, SIZE) if family == "identity" else tiny_triplane()
    latents = cache_latents(autoencoder, store.root, tmp_path / "latents", autoencoder_sha256="0" * 64,
                            jitter_windows=2, progress=False, device=torch.device("cpu"))  # fmt: skip
    assert latents.meta["storage"] == ("clips" if family == "identity" else "array")
    m = latents.manifest
    clips, windows = m[m["offset"] == 0], m[m["offset"] > 0]
    assert len(clips) == len(store) and len(windows) == 2 * int((clips["previous"] >= 0).sum()) == 12
    for i, row in windows.iterrows():
        b = int(row["window_of"])
        a = int(m.loc[b, "previous"])
        o = int(row["offset"])
        assert o in (1, 3) and row["previous"] == -1  # an unconditional target
        assert (row["split"], row["label"]) == (m.loc[b, "split"], m.loc[b, "label"])
        expected = to_model_tensor(np.concatenate([store[a][o:], store[b][:o]]))
        with torch.no_grad():
            expected = autoencoder.encode(expected[None])[0].float()
        stored = LatentStore(tmp_path / "latents").latent(int(i))
        torch.testing.assert_close(stored, expected, rtol=0, atol=2e-3)  # the array keeps spec.dtype
    first_clips = clips.index[clips["previous"] < 0]
    assert not set(windows["window_of"]) & set(first_clips)  # no window reaches back across videos


def test_the_training_set_draws_windows_as_unconditional_items(store: ClipStore, tmp_path: Path) -> None:
    cache_latents(IdentityAutoencoder(FRAMES, SIZE), store.root, tmp_path / "plain", autoencoder_sha256="0" * 64,
                  progress=False)  # fmt: skip
    cache_latents(IdentityAutoencoder(FRAMES, SIZE), store.root, tmp_path / "jitter", autoencoder_sha256="0" * 64,
                  jitter_windows=1, progress=False)  # fmt: skip
    plain, jittered = LatentPairDataset(tmp_path / "plain"), LatentPairDataset(tmp_path / "jitter")
    train_pairs = sum(1 for i in plain.indices if plain.previous[i] >= 0)
    assert len(jittered) == len(plain) + train_pairs
    extra = [k for k, i in enumerate(jittered.indices) if jittered.store.manifest["offset"][i] > 0]
    assert len(extra) == train_pairs and all(jittered[k][2] is False for k in extra)


def test_encoding_in_shards_gives_the_rows_of_one_whole_encoding(store: ClipStore) -> None:
    """cache_latents on a cluster encodes consecutive row shards on several workers (pipelines.cluster)."""
    from pvdm.data.latents import encode_clip_store, latent_manifest

    model, manifest = tiny_triplane(), latent_manifest(store, 2)
    kwargs = {"batch_size": 4, "device": torch.device("cpu"), "progress": False, "manifest": manifest}
    with torch.no_grad():
        whole = encode_clip_store(model.encode, store, **kwargs)
        parts = [
            encode_clip_store(model.encode, store, rows=range(a, b), **kwargs) for a, b in ((0, 7), (7, 21))
        ]
    assert len(whole) == len(manifest) == 21
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
