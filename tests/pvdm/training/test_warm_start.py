"""Warm starts (`train.init_from`): the initial weights are the checkpoint's at step 0, a checkpoint that does not
fit the config is one error naming the key, the config confines paths to the project, and the run identity
follows the init source (a new champion is a new Ray run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config.base import ConfigError
from pvdm.config.diffusion import DiffusionConfig, DiffusionTrainConfig
from pvdm.config.runtime import RuntimeConfig, training_identity
from pvdm.config.training import TrainConfig
from pvdm.data.latents import LatentPairDataset
from pvdm.families.registry import autoencoder_record, denoiser_record
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext
from pvdm.training.warm_start import InitSource, WarmStartError, file_source, read_initial_weights
from tests.pvdm.training.test_loops import (
    DATA,
    RUNTIME,
    SPEC,
    Interrupt,
    ae_cfg,
    clips,
    interrupting,
    latent_store,
    no_perceptual,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def unet_cfg(steps: int, channels: int = 8) -> DiffusionConfig:
    return DiffusionConfig(
        denoiser=TriplaneUNetConfig(model_channels=channels, channel_mult=[1, 2], num_res_blocks=1,
                                    attention_resolutions=[2], num_heads=2, norm_groups=4),
        train=DiffusionTrainConfig(steps=steps, batch_size=3, lr=1e-3, checkpoint_every=2, log_every=1, ema_decay=0.9),
    )  # fmt: skip


@dataclass
class Capturing(LocalContext):
    """A LocalContext that keeps the weights the model has when training starts (after any loading)."""

    at_start: dict[str, torch.Tensor] = field(default_factory=dict)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        inner = getattr(
            model, "denoiser", model
        )  # the diffusion loop prepares its objective around the denoiser
        self.at_start = {k: v.detach().clone() for k, v in inner.state_dict().items()}
        return super().prepare_model(model)


def test_init_from_starts_the_diffusion_model_and_its_ema_from_the_checkpoint_at_step_zero(
    tmp_path: Path,
) -> None:
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train_diffusion(unet_cfg(4), RUNTIME, ds, SPEC, LocalContext(tmp_path / "champion"))
    champion_file = latest_checkpoint(tmp_path / "champion")
    champion = load_checkpoint(champion_file)

    cfg = unet_cfg(2)  # 2 fine-tuning steps
    source = InitSource("champion", "pvdm-diffusion v3", "ab" * 32, "3")
    init = read_initial_weights(champion_file, source, denoiser_record(cfg, SPEC))
    ctx = Capturing(tmp_path / "tuned")
    history = train_diffusion(cfg, RUNTIME, ds, SPEC, ctx, init=init)

    assert ctx.at_start.keys() == champion["model"].keys()
    for key, value in champion["model"].items():
        assert torch.equal(ctx.at_start[key], value), key  # the champion's weights, before any step
    tuned = load_checkpoint(latest_checkpoint(tmp_path / "tuned"))
    assert tuned["step"] == 2 and [r["step"] for r in history.rows] == [1.0, 2.0]  # steps count from 0 again
    assert tuned["init"] == source.to_dict()  # the lineage travels in the checkpoint
    assert (
        tuned["ema"]["num_updates"] == 2
    )  # the EMA's count starts again; its weights are the champion's average
    assert any(not torch.equal(v, champion["model"][k]) for k, v in tuned["model"].items())  # it trained


def test_a_warm_started_run_killed_half_way_resumes_its_own_checkpoint(tmp_path: Path) -> None:
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train_diffusion(unet_cfg(2), RUNTIME, ds, SPEC, LocalContext(tmp_path / "champion"))
    path = latest_checkpoint(tmp_path / "champion")
    cfg = unet_cfg(4)
    init = read_initial_weights(path, file_source("champion.pt", path), denoiser_record(cfg, SPEC))
    train_diffusion(cfg, RUNTIME, ds, SPEC, LocalContext(tmp_path / "straight"), init=init)
    with pytest.raises(Interrupt):
        train_diffusion(cfg, RUNTIME, ds, SPEC, interrupting(LocalContext(tmp_path / "killed"), 2), init=init)
    resumed = Capturing(tmp_path / "killed")
    train_diffusion(cfg, RUNTIME, ds, SPEC, resumed, init=init)
    at_step_2 = load_checkpoint(tmp_path / "killed" / "step_00000002.pt")
    for key, value in at_step_2["model"].items():
        assert torch.equal(resumed.at_start[key], value), key  # its own step-2 weights, not the init's
    a = load_checkpoint(latest_checkpoint(tmp_path / "straight"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "killed"))
    for key, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][key], atol=1e-6, rtol=0, msg=key)


def test_init_from_starts_the_autoencoder_from_the_checkpoint(tmp_path: Path) -> None:
    train_autoencoder(ae_cfg(3), DATA, RUNTIME, clips(), LocalContext(tmp_path / "champion"), no_perceptual)
    path = latest_checkpoint(tmp_path / "champion")
    cfg = ae_cfg(2)
    init = read_initial_weights(path, file_source("champion.pt", path), autoencoder_record(cfg, DATA))
    ctx = Capturing(tmp_path / "tuned")
    train_autoencoder(cfg, DATA, RUNTIME, clips(), ctx, no_perceptual, init=init)
    for key, value in load_checkpoint(path)["model"].items():
        assert torch.equal(ctx.at_start[key], value), key
    tuned = load_checkpoint(latest_checkpoint(tmp_path / "tuned"))
    assert tuned["step"] == 2 and tuned["init"]["sha256"] == init.source.sha256


def test_a_checkpoint_that_does_not_fit_the_config_is_one_error_naming_the_key(tmp_path: Path) -> None:
    ds = LatentPairDataset(latent_store(tmp_path), "train")
    train_diffusion(unet_cfg(2), RUNTIME, ds, SPEC, LocalContext(tmp_path / "champion"))
    path = latest_checkpoint(tmp_path / "champion")
    source = file_source("models/champion.pt", path)
    wider = denoiser_record(unet_cfg(2, channels=16), SPEC)
    with pytest.raises(WarmStartError) as err:
        read_initial_weights(path, source, wider)
    message = str(err.value)
    assert (
        "models/champion.pt" in message
        and "diffusion.denoiser.model_channels: 8 in the checkpoint, 16 now" in message
    )
    assert "\n" not in message
    with pytest.raises(WarmStartError, match="a 'diffusion' checkpoint cannot start a autoencoder model"):
        read_initial_weights(path, source, autoencoder_record(ae_cfg(2), DATA))
    # fine-tuning with other optimisation settings is the point: they are not compared
    other_lr = unet_cfg(2).model_copy(update={"train": DiffusionTrainConfig(steps=9, lr=5e-5, batch_size=3)})
    assert read_initial_weights(path, source, denoiser_record(other_lr, SPEC)).model


@pytest.mark.parametrize("value", ["none", "champion", "models/champion.pt", "data/ckpt/step_1.pt"])
def test_init_from_accepts_none_champion_and_paths_inside_the_project(value: str) -> None:
    assert TrainConfig(init_from=value).init_from == value


@pytest.mark.parametrize("value", ["/etc/passwd", "../elsewhere/model.pt", "models/../../x.pt", ""])
def test_init_from_refuses_paths_that_leave_the_project(value: str) -> None:
    with pytest.raises(ValidationError, match="init_from"):
        TrainConfig(init_from=value)


def test_init_path_is_resolved_in_the_project_and_a_link_out_is_refused(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside.pt"
    (project / "models").mkdir(parents=True)
    outside.write_bytes(b"x")
    (project / "models" / "link.pt").symlink_to(outside)
    assert TrainConfig(init_from="models/a.pt").init_path(project) == (project / "models" / "a.pt").resolve()
    assert TrainConfig(init_from="champion").init_path(project) is None
    with pytest.raises(
        ConfigError, match="diffusion.train.init_from: 'models/link.pt' is outside the project"
    ):
        TrainConfig(init_from="models/link.pt").init_path(project, "diffusion.train.init_from")
    allowed = TrainConfig(init_from=str(outside), allow_outside_project=True)
    assert allowed.init_path(project) == outside.resolve()


def test_the_run_identity_changes_with_the_init_source() -> None:
    runtime = RuntimeConfig(seed=1)
    scratch = training_identity(runtime)
    v3 = training_identity(runtime, InitSource("champion", "pvdm-diffusion v3", "a" * 64, "3").to_dict())
    v4 = training_identity(runtime, InitSource("champion", "pvdm-diffusion v4", "b" * 64, "4").to_dict())
    assert len({str(scratch), str(v3), str(v4)}) == 3
    moved = runtime.model_copy(update={"num_workers": 4})  # placement still does not count
    assert training_identity(moved, v3["init_source"]) == v3
