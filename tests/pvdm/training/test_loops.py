"""The per-worker loops under LocalContext: checkpoints, history, resume after an interruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig, DiffusionTrainConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.config.training import TrainConfig
from pvdm.data.latents import LatentPairDataset, LatentStore, write_latent_store
from pvdm.families.registry import load_diffusion
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig
from pvdm.models.latent import LatentShape, triplane_spec
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext

RUNTIME = RuntimeConfig(precision="fp32", seed=3)
DATA = DataConfig(resolution=16, frames=4)
LATENT = LatentShape(channels=2, frames=4, height=4, width=4)
SPEC = triplane_spec(LATENT)


def ae_cfg(steps: int) -> AutoencoderConfig:
    return AutoencoderConfig(
        model=TriplaneAEConfig(
            width=16, heads=2, patch_size=4, encoder_depth=1, decoder_depth=1, projection_depth=1
        ),
        loss=AELossConfig(lpips_weight=0.0),
        train=TrainConfig(steps=steps, batch_size=2, lr=1e-3, checkpoint_every=3, log_every=1),
    )


class Interrupt(Exception):
    pass


def interrupting(ctx: LocalContext, at_step: int) -> LocalContext:
    """A context whose report raises after the checkpoint of `at_step` is written: a crash mid-run."""

    def on_report(step: int, metrics: dict) -> None:
        if step == at_step:
            raise Interrupt

    ctx.on_report = on_report
    return ctx


def clips(n: int = 5) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return _Unwrap(TensorDataset(torch.rand(n, 3, 4, 16, 16, generator=g) * 2 - 1))


class _Unwrap(torch.utils.data.Dataset):
    def __init__(self, ds: TensorDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.ds[i][0]


def no_perceptual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    raise AssertionError("lpips weight is 0")


def test_autoencoder_loop_resumes_after_a_crash_to_the_same_weights(tmp_path: Path) -> None:
    cfg = ae_cfg(steps=7)
    straight = LocalContext(tmp_path / "straight")
    train_autoencoder(cfg, DATA, RUNTIME, clips(), straight, no_perceptual)

    crashed = interrupting(LocalContext(tmp_path / "crashed"), at_step=3)
    with pytest.raises(Interrupt):
        train_autoencoder(cfg, DATA, RUNTIME, clips(), crashed, no_perceptual)
    assert latest_checkpoint(tmp_path / "crashed").name == "step_00000003.pt"
    history = train_autoencoder(
        cfg, DATA, RUNTIME, clips(), LocalContext(tmp_path / "crashed"), no_perceptual
    )

    a = load_checkpoint(latest_checkpoint(tmp_path / "straight"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "crashed"))
    assert a["step"] == b["step"] == 7
    for key, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][key], atol=1e-6, rtol=0, msg=key)
    assert [r["step"] for r in history.rows] == [float(s) for s in range(1, 8)]  # curve survives the resume
    assert len(list((tmp_path / "crashed").glob("step_*.pt"))) <= 2  # old checkpoints pruned


def latent_store(tmp_path: Path, n: int = 6) -> Path:
    g = np.random.default_rng(0)
    latents = np.tanh(g.normal(size=(n, *LATENT.packed_shape))).astype(np.float16)
    manifest = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "split": ["train"] * (n - 1) + ["test"],
            "previous": [-1, 0, 1, -1, 3, 4],
            "label": [-1] * n,
        }
    )
    return write_latent_store(tmp_path / "latents", latents, manifest, SPEC, autoencoder_sha256="0" * 64)


def test_latent_store_round_trip_and_pairs(tmp_path: Path) -> None:
    root = latent_store(tmp_path)
    store = LatentStore(root)
    assert len(store) == 6 and store.spec == SPEC and store.indices("test") == [5]
    ds = LatentPairDataset(root, "train")
    z, z_prev, has_prev, label = ds[2]
    assert has_prev and torch.equal(z_prev, torch.from_numpy(np.asarray(store.latents[1], dtype=np.float32)))
    assert label == -1
    z, z_prev, has_prev, _ = ds[0]
    assert not has_prev and not z_prev.any()
    with pytest.raises(FileNotFoundError, match="not a latent store"):
        LatentStore(tmp_path / "nothing")


def test_diffusion_loop_trains_resumes_and_rebuilds_ema_model(tmp_path: Path) -> None:
    cfg = DiffusionConfig(
        denoiser=TriplaneUNetConfig(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2, norm_groups=4),
        train=DiffusionTrainConfig(steps=6, batch_size=3, lr=1e-3, checkpoint_every=2, log_every=2, ema_decay=0.9),
    )  # fmt: skip
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    crashed = interrupting(LocalContext(tmp_path / "ckpt"), at_step=4)
    with pytest.raises(Interrupt):
        train_diffusion(cfg, RUNTIME, ds, SPEC, crashed)
    train_diffusion(cfg, RUNTIME, ds, SPEC, LocalContext(tmp_path / "ckpt"))
    train_diffusion(cfg, RUNTIME, ds, SPEC, LocalContext(tmp_path / "straight"))
    a = load_checkpoint(latest_checkpoint(tmp_path / "ckpt"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "straight"))
    for key, value in a["ema"]["shadow"].items():
        torch.testing.assert_close(value, b["ema"]["shadow"][key], atol=1e-6, rtol=0, msg=key)
    trained = load_diffusion(a)
    assert trained.latent_spec == SPEC
    for name, value in trained.model.state_dict().items():
        torch.testing.assert_close(value, a["ema"]["shadow"][name], msg=name)
    # sampling uses the average, not the last raw weights
    assert any(
        not torch.equal(v, a["model"][k]) for k, v in a["ema"]["shadow"].items() if v.is_floating_point()
    )


def test_class_conditional_training_records_the_classes_and_refuses_a_mismatch(tmp_path: Path) -> None:
    g = np.random.default_rng(1)
    latents = np.tanh(g.normal(size=(4, *LATENT.packed_shape))).astype(np.float16)
    manifest = pd.DataFrame({"clip_id": list("abcd"), "split": ["train"] * 4, "previous": [-1] * 4,
                             "label": [0, 1, 0, 1]})  # fmt: skip
    root = write_latent_store(
        tmp_path / "lat", latents, manifest, SPEC, "0" * 64, label_names=["cats", "dogs"]
    )
    ds = LatentPairDataset(root)
    assert ds.label_names == ["cats", "dogs"] and [ds[k][3] for k in range(4)] == [0, 1, 0, 1]

    def cfg(num_classes: int) -> DiffusionConfig:
        return DiffusionConfig(
            denoiser=TriplaneUNetConfig(model_channels=8, channel_mult=[1], num_res_blocks=1, attention_resolutions=[],
                                        num_heads=2, norm_groups=4, num_classes=num_classes),
            train=DiffusionTrainConfig(steps=2, batch_size=2, checkpoint_every=2, log_every=1),
        )  # fmt: skip

    train_diffusion(cfg(2), RUNTIME, ds, SPEC, LocalContext(tmp_path / "ok"))
    trained = load_diffusion(load_checkpoint(latest_checkpoint(tmp_path / "ok")))
    assert trained.label_names == ["cats", "dogs"] and trained.model.num_classes == 2
    with pytest.raises(ValueError, match=r"num_classes is 3 but the data has 2 classes \(cats, dogs\)"):
        train_diffusion(cfg(3), RUNTIME, ds, SPEC, LocalContext(tmp_path / "bad"))
    train_diffusion(cfg(0), RUNTIME, ds, SPEC, LocalContext(tmp_path / "uncond"))  # labels ignored
    assert load_diffusion(load_checkpoint(latest_checkpoint(tmp_path / "uncond"))).label_names == []


def test_ema_is_updated_every_ema_every_steps(tmp_path: Path) -> None:
    cfg = DiffusionConfig(
        denoiser=TriplaneUNetConfig(model_channels=8, channel_mult=[1], num_res_blocks=1, attention_resolutions=[],
                                    num_heads=2, norm_groups=4),
        train=DiffusionTrainConfig(steps=6, batch_size=2, checkpoint_every=6, log_every=3, ema_every=3),
    )  # fmt: skip
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train_diffusion(cfg, RUNTIME, ds, SPEC, LocalContext(tmp_path / "ckpt"))
    assert (
        load_checkpoint(latest_checkpoint(tmp_path / "ckpt"))["ema"]["num_updates"] == 2
    )  # after steps 3 and 6


def test_the_learning_rate_schedule_is_applied_and_a_function_of_the_step() -> None:
    from pvdm.training.schedule import learning_rate

    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_schedule="cosine", final_lr_fraction=0.1)
    golden = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 55: 0.55, 99: 0.1, 150: 0.1}
    for step, lr in golden.items():
        assert learning_rate(cfg, step) == pytest.approx(lr, abs=1e-3), step
    assert learning_rate(TrainConfig(lr=0.3), 500) == 0.3  # constant, no warm-up: the old behaviour


def test_the_autoencoder_loop_sets_the_scheduled_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    cfg = ae_cfg(4).model_copy(update={"train": TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=4,
                                                            checkpoint_every=4, log_every=1)})  # fmt: skip
    ctx = LocalContext(tmp_path / "ckpt")
    original = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    train_autoencoder(cfg, DATA, RUNTIME, clips(), ctx)
    assert seen == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])


def test_a_killed_latent_write_leaves_nothing_behind_after_the_next(tmp_path: Path) -> None:
    root = latent_store(tmp_path)
    (tmp_path / ".latents.abc123").mkdir()  # a write killed before its swap
    (tmp_path / ".latents.old-42").mkdir()  # ... or between the two renames
    latent_store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents"] and LatentStore(root).spec == SPEC


def test_the_global_batch_is_kept_on_any_worker_count_or_refused() -> None:
    from pvdm.training.loop import per_rank_batch_size

    assert [per_rank_batch_size(8, w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(ValueError, match=r"train.batch_size 8 does not divide among 3 workers"):
        per_rank_batch_size(8, 3)  # 2 per worker would silently train on 6 clips a step
    with pytest.raises(ValueError, match="does not divide among 16 workers"):
        per_rank_batch_size(8, 16)
