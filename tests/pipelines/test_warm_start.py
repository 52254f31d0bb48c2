"""The retrain flow's warm-start choice against a real MLflow registry (SQLite): fine-tune the champion when the
model config is the champion's, else train from scratch saying which key differs; and `init_from` resolution."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, CHAMPION, CHECKPOINT_FILES, DIFFUSION
from pipelines.config import PipelineParams, parse_pipeline_params
from pipelines.warm_start import initial_weights, lineage_tags, plan_warm_start
from pvdm.checkpoint import save_checkpoint
from pvdm.config.training import TrainConfig
from pvdm.families.registry import autoencoder_record, build_autoencoder
from pvdm.hashing import sha256_file
from pvdm.training.warm_start import InitSource
from tests.pipelines.tiny_params import TINY_PARAMS


def params(**changes: Any) -> PipelineParams:
    """TINY_PARAMS with dotted-key changes."""
    data = copy.deepcopy(TINY_PARAMS)
    for key, value in changes.items():
        *path, leaf = key.split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_pipeline_params(data)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def register_champion(client: MlflowClient, p: PipelineParams, tmp_path: Path) -> None:
    """Both models' champion v1, as the training stages log them: a run with checkpoint/<model>.pt, registered."""
    records = {
        AUTOENCODER: autoencoder_record(p.autoencoder, p.data),
        DIFFUSION: {"kind": "diffusion", "family": p.diffusion.denoiser.type,
                    "config": {"diffusion": p.diffusion.model_dump(mode="json"), "latent_spec": {}}},
    }  # fmt: skip
    experiment = client.create_experiment("pvdm", artifact_location=(tmp_path / "artifacts").as_uri())
    for name, record in records.items():
        weights = build_autoencoder(p.autoencoder, p.data).state_dict() if name == AUTOENCODER else {}
        file = save_checkpoint(tmp_path / CHECKPOINT_FILES[name], record | {"model": weights})
        run = client.create_run(experiment)
        client.log_artifact(run.info.run_id, str(file), artifact_path="checkpoint")
        client.create_registered_model(name)
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/x", run_id=run.info.run_id)
        client.set_registered_model_alias(name, CHAMPION, version.version)


def test_an_unchanged_config_fine_tunes_both_champions(client: MlflowClient, tmp_path: Path) -> None:
    register_champion(client, params(), tmp_path)
    plan = plan_warm_start(params(), None, client)
    assert plan.overrides == {
        "autoencoder.train.init_from": "champion",
        "diffusion.train.init_from": "champion",
    }
    assert plan.messages == [
        "autoencoder: fine-tuning the champion (pvdm-autoencoder v1) for 12 steps: the model config is unchanged",
        "diffusion: fine-tuning the champion (pvdm-diffusion v1) for 12 steps: the model config is unchanged",
    ]
    # fine-tuning settings are not the model config
    assert plan_warm_start(params(**{"diffusion.train.lr": 5e-5}), None, client).overrides == plan.overrides


def test_a_changed_autoencoder_trains_both_from_scratch_saying_which_key(
    client: MlflowClient, tmp_path: Path
) -> None:
    register_champion(client, params(), tmp_path)
    plan = plan_warm_start(params(**{"autoencoder.model.width": 32}), None, client)
    assert plan.overrides == {}  # params.yaml already says none
    ae, diffusion = plan.messages
    assert ae.startswith("autoencoder: training from scratch: the config differs from the champion's")
    assert "autoencoder.model.width: 16 in the checkpoint, 32 now" in ae
    assert diffusion.startswith("diffusion: training from scratch: the autoencoder is trained from scratch")


def test_a_changed_denoiser_fine_tunes_only_the_autoencoder(client: MlflowClient, tmp_path: Path) -> None:
    register_champion(client, params(), tmp_path)
    changed = params(**{"diffusion.denoiser.model_channels": 16, "diffusion.train.init_from": "champion"})
    plan = plan_warm_start(changed, None, client)
    assert plan.overrides == {"autoencoder.train.init_from": "champion", "diffusion.train.init_from": "none"}
    assert "diffusion.denoiser.model_channels: 8 in the checkpoint, 16 now" in plan.messages[1]


def test_the_users_choice_and_a_missing_champion(client: MlflowClient, tmp_path: Path) -> None:
    plan = plan_warm_start(params(), None, client)  # an empty registry
    assert plan.overrides == {} and all("the registry has no champion of pvdm-" in m for m in plan.messages)
    register_champion(client, params(), tmp_path)
    plan = plan_warm_start(params(), {"diffusion.train.init_from": "none"}, client)
    assert list(plan.overrides) == ["autoencoder.train.init_from"] and len(plan.messages) == 1
    own = params(
        **{"autoencoder.train.init_from": "models/ae.pt", "diffusion.train.init_from": "models/d.pt"}
    )
    assert plan_warm_start(own, None, client).messages == []  # checkpoint paths are the user's


def test_init_from_resolution_and_lineage_tags(client: MlflowClient, tmp_path: Path) -> None:
    p = params()
    record = autoencoder_record(p.autoencoder, p.data)
    assert initial_weights("autoencoder", TrainConfig(), record, tmp_path, tmp_path / "dl") is None
    assert lineage_tags(None) == {"pvdm.init_from": "none"}
    with pytest.raises(
        FileNotFoundError, match=r"autoencoder.train.init_from: .*models/ae.pt does not exist"
    ):
        initial_weights(
            "autoencoder", TrainConfig(init_from="models/ae.pt"), record, tmp_path, tmp_path / "dl"
        )
    register_champion(client, p, tmp_path)
    init = initial_weights(
        "autoencoder", TrainConfig(init_from="champion"), record, tmp_path, tmp_path / "dl"
    )
    assert init.model.keys() == build_autoencoder(p.autoencoder, p.data).state_dict().keys()
    downloaded = tmp_path / "dl" / "autoencoder.pt"
    assert init.source == InitSource("champion", "pvdm-autoencoder v1", sha256_file(downloaded), "1")
    assert lineage_tags(init) == {
        "pvdm.init_from": "champion",
        "pvdm.fine_tuned_from": "pvdm-autoencoder v1",
        "pvdm.init_sha256": sha256_file(downloaded),
    }


def test_a_new_champion_is_a_new_ray_run_and_placement_is_not() -> None:
    from pipelines.ray_train import run_name

    section = {"diffusion": {"a": 1}, "runtime": {"seed": 0}}
    v3 = InitSource("champion", "pvdm-diffusion v3", "a" * 64, "3").to_dict()
    v4 = InitSource("champion", "pvdm-diffusion v4", "b" * 64, "4").to_dict()
    names = {run_name("train_diffusion", section, init_source=s) for s in (None, v3, v4)}
    assert len(names) == 3
    moved = {**section, "runtime": {"seed": 0, "num_workers": 4}}
    assert run_name("train_diffusion", moved, init_source=v3) == run_name(
        "train_diffusion", section, init_source=v3
    )
