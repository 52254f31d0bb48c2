"""Data-parallel training on Ray Train with 2 CPU workers (gloo): different data per worker, identical weights."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray.train
import torch

from pipelines.ray_train import RayContext, TrainingError, final_payload, fit
from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.config.training import TrainConfig
from pvdm.families.triplane.config import TriplaneAEConfig

CFG = AutoencoderConfig(
    model=TriplaneAEConfig(
        width=16, heads=2, patch_size=4, encoder_depth=1, decoder_depth=1, projection_depth=1
    ),
    loss=AELossConfig(lpips_weight=0.0),
    train=TrainConfig(steps=4, batch_size=4, lr=1e-3, checkpoint_every=2, log_every=1),
)
DATA = DataConfig(resolution=16, frames=4)


@pytest.fixture(autouse=True)
def _local_ray_shut_down() -> Iterator[None]:
    """fit() starts a local Ray in this process; leave none behind for the tests that follow."""
    yield
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_two_workers_see_different_data_and_end_with_identical_weights(tmp_path: Path) -> None:
    out = tmp_path / "ranks"
    out.mkdir()

    def loop(config: dict) -> None:
        # defined inside the test so Ray ships it by value to the workers
        from pvdm.training.autoencoder import train_autoencoder

        class Recording(torch.utils.data.Dataset):
            def __init__(self) -> None:
                g = torch.Generator().manual_seed(0)
                self.clips = torch.rand(16, 3, 4, 16, 16, generator=g) * 2 - 1
                self.seen: list[int] = []

            def __len__(self) -> int:
                return len(self.clips)

            def __getitem__(self, i: int) -> torch.Tensor:
                self.seen.append(i)
                return self.clips[i]

        rank = ray.train.get_context().get_world_rank()
        logged = Path(config["out"]) / f"logged{rank}.txt"

        def log_metrics(
            metrics: dict, step: int
        ) -> None:  # stands in for MLflow: must be called on rank 0 only
            with logged.open("a") as f:
                f.write(f"{step}\n")

        ctx = RayContext(log_metrics, torch_threads=1)
        data = Recording()
        captured = {}

        def no_lpips(a, b):
            raise AssertionError

        original = ctx.prepare_model

        def prepare(model):
            captured["model"] = wrapped = original(model)
            return wrapped

        ctx.prepare_model = prepare
        train_autoencoder(CFG, DATA, RuntimeConfig(precision="fp32", num_workers=2), data, ctx, no_lpips)
        weights = getattr(captured["model"], "module", captured["model"]).state_dict()
        checksum = float(sum(v.double().sum() for v in weights.values()))
        (Path(config["out"]) / f"rank{ctx.rank}.json").write_text(
            json.dumps({"seen": data.seen, "checksum": checksum, "world": ctx.world_size})
        )

    runtime = RuntimeConfig(num_workers=2, cpus_per_worker=1, precision="fp32")
    result = fit(loop, {"out": str(out)}, runtime, name="ddp-test", storage_path=tmp_path / "ray")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["seen"] and ranks[1]["seen"]
    for step in range(CFG.train.steps):  # per step, each worker took 2 of the 4 clips of the global batch
        a, b = ranks[0]["seen"][2 * step : 2 * step + 2], ranks[1]["seen"][2 * step : 2 * step + 2]
        assert not set(a) & set(b), (step, a, b)
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], abs=1e-9)
    assert final_payload(result)["step"] == CFG.train.steps
    assert (out / "logged0.txt").read_text().split() == ["1", "2", "3", "4"]
    assert not (out / "logged1.txt").exists()  # rank 1 never logs


@pytest.mark.ray
def test_non_finite_loss_fails_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    def loop(config: dict) -> None:
        from pvdm.training.autoencoder import train_autoencoder

        class Poisoned(torch.utils.data.Dataset):  # clip 3 is NaN: the loss goes non-finite when it is drawn
            def __len__(self) -> int:
                return 4

            def __getitem__(self, i: int) -> torch.Tensor:
                return torch.full((3, 4, 16, 16), float("nan") if i == 3 else 0.5)

        cfg = CFG.model_copy(
            update={"train": TrainConfig(steps=8, batch_size=1, lr=1e-3, checkpoint_every=1)}
        )
        train_autoencoder(
            cfg, DATA, RuntimeConfig(precision="fp32"), Poisoned(), RayContext(), lambda a, b: 0
        )

    runtime = RuntimeConfig(cpus_per_worker=1, max_failures=0)
    with pytest.raises(
        TrainingError, match=r"autoencoder loss is nan at step \d+.*run the stage again"
    ) as info:
        fit(loop, {}, runtime, name="nan-test", storage_path=tmp_path / "ray")
    kept = sorted(p for p in (tmp_path / "ray" / "nan-test").glob("checkpoint_*") if p.is_dir())
    assert kept, str(info.value)
    from pipelines.ray_train import CHECKPOINT_FILE
    from pvdm.checkpoint import load_checkpoint

    payload = load_checkpoint(kept[-1] / CHECKPOINT_FILE)
    assert all(torch.isfinite(v).all() for v in payload["model"].values())


@pytest.mark.ray
@pytest.mark.slow
def test_two_workers_train_the_gan_phase_and_end_with_identical_weights(tmp_path: Path) -> None:
    """The discriminator is DDP-wrapped too: both ranks must end with the same autoencoder and discriminator."""
    out = tmp_path / "ranks"
    out.mkdir()
    cfg = CFG.model_copy(
        update={
            "loss": AELossConfig(lpips_weight=0.0, gan_start_step=0, disc_channels=8, disc_layers=2),
            "train": TrainConfig(steps=3, batch_size=4, lr=1e-3, checkpoint_every=3, log_every=1),
        }
    )

    def loop(config: dict) -> None:
        from pvdm.models.discriminator import VideoDiscriminator
        from pvdm.training.autoencoder import train_autoencoder

        def checksum(module: torch.nn.Module) -> float:
            bare = getattr(module, "module", module)
            return float(sum(v.double().sum() for v in bare.state_dict().values()))

        clips = torch.rand(16, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
        ctx = RayContext(lambda metrics, step: None, torch_threads=1)
        wrapped, start = {}, {}
        original = ctx.prepare_model

        def prepare(model):
            name = "disc" if isinstance(model, VideoDiscriminator) else "model"
            start[name] = checksum(model)
            wrapped[name] = original(model)
            return wrapped[name]

        ctx.prepare_model = prepare
        runtime = RuntimeConfig(precision="fp32", num_workers=2)
        train_autoencoder(config["cfg"], DATA, runtime, list(clips), ctx, lambda a, b: a.new_zeros(()))
        result = {name: checksum(m) for name, m in wrapped.items()} | {"disc_start": start["disc"]}
        (Path(config["out"]) / f"rank{ctx.rank}.json").write_text(
            json.dumps(result | {"world": ctx.world_size})
        )

    runtime = RuntimeConfig(num_workers=2, cpus_per_worker=1, precision="fp32")
    result = fit(loop, {"out": str(out), "cfg": cfg}, runtime, name="ddp-gan", storage_path=tmp_path / "ray")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["model"] == pytest.approx(ranks[1]["model"], abs=1e-6)
    assert ranks[0]["disc"] == pytest.approx(ranks[1]["disc"], abs=1e-6)
    assert ranks[0]["disc"] != pytest.approx(ranks[0]["disc_start"], abs=1e-6)  # the discriminator trained
    assert final_payload(result)["step"] == cfg.train.steps


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_resumed_on_another_worker_count_continues_from_its_checkpoint(tmp_path: Path) -> None:
    """One worker trains until a poisoned clip stops it; the rerun, on two workers and under the same run name
    (pipelines.ray_train.run_name ignores num_workers), continues from the kept checkpoint with the same global
    batch and finishes."""
    from pipelines.ray_train import run_name

    cfg = CFG.model_copy(update={"train": TrainConfig(steps=6, batch_size=4, lr=1e-3, checkpoint_every=1)})
    one, two = (
        RuntimeConfig(num_workers=n, cpus_per_worker=1, precision="fp32", max_failures=0) for n in (1, 2)
    )
    name = run_name("train_autoencoder", {"autoencoder": cfg.model_dump(), "runtime": one.model_dump()})
    assert name == run_name(
        "train_autoencoder", {"autoencoder": cfg.model_dump(), "runtime": two.model_dump()}
    )

    def loop(config: dict) -> None:
        from pvdm.training.autoencoder import train_autoencoder

        class Clips(torch.utils.data.Dataset):  # with poison on, clip 3 turns NaN from the third step on
            def __init__(self) -> None:
                self.calls = 0

            def __len__(self) -> int:
                return 8

            def __getitem__(self, i: int) -> torch.Tensor:
                self.calls += 1
                poisoned = config["poison"] and self.calls > 8
                return torch.full((3, 4, 16, 16), float("nan") if poisoned else i / 8 - 0.5)

        ctx = RayContext(torch_threads=1)
        Path(config["out"]).joinpath(f"world{ctx.world_size}-rank{ctx.rank}").write_text(
            str((ctx.resume_payload() or {}).get("step", 0))
        )
        train_autoencoder(cfg, DATA, config["runtime"], Clips(), ctx, lambda a, b: a.new_zeros(()))

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TrainingError, match="loss is nan"):
        fit(
            loop,
            {"out": str(out), "poison": True, "runtime": one},
            one,
            name=name,
            storage_path=tmp_path / "ray",
        )
    ray.shutdown()
    result = fit(
        loop,
        {"out": str(out), "poison": False, "runtime": two},
        two,
        name=name,
        storage_path=tmp_path / "ray",
    )
    resumed_at = {int((out / f"world2-rank{r}").read_text()) for r in (0, 1)}
    assert len(resumed_at) == 1 and 0 < resumed_at.pop() < cfg.train.steps  # both ranks resumed mid-run
    assert final_payload(result)["step"] == cfg.train.steps
