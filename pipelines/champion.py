"""The registry's champion as files: the checkpoints the champion's training runs logged (`checkpoint/<name>.pt`,
pipelines/stages/models.py), downloaded for a warm start or to score the champion again.

Retraining uses it twice: `train.init_from: champion` fine-tunes from these weights, and promotion scores the
champion on the challenger's evaluation set when no score of it on that set exists yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
DIFFUSION = "pvdm-diffusion"
AUTOENCODER = "pvdm-autoencoder"
CHECKPOINT_FILES = {AUTOENCODER: "autoencoder.pt", DIFFUSION: "diffusion.pt"}


class ChampionError(RuntimeError):
    """The registry has no usable champion for what was asked (no alias, or its run logged no checkpoint)."""


@dataclass(frozen=True)
class ChampionCheckpoint:
    name: str  # registered model name
    version: str
    run_id: str
    path: Path  # the downloaded checkpoint

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def champion_version(client: MlflowClient, name: str = DIFFUSION) -> ModelVersion | None:
    """The version the `champion` alias points at, None when there is no such model or alias."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def download_checkpoint(client: MlflowClient, version: ModelVersion, dst: Path) -> ChampionCheckpoint:
    """The training checkpoint a registered version's run logged, downloaded under `dst` (created)."""
    name = version.name
    file = CHECKPOINT_FILES[name]
    if not version.run_id:
        raise ChampionError(f"{name} v{version.version} has no training run: no checkpoint to download")
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = client.download_artifacts(version.run_id, f"checkpoint/{file}", str(dst))
    except (MlflowException, OSError) as err:
        raise ChampionError(
            f"{name} v{version.version}: its run {version.run_id} logged no checkpoint/{file} ({err})"
        ) from err
    return ChampionCheckpoint(name, str(version.version), version.run_id, Path(local))


def champion_checkpoint(client: MlflowClient, name: str, dst: Path) -> ChampionCheckpoint:
    """The champion of `name` (pvdm-autoencoder or pvdm-diffusion), downloaded under `dst`."""
    version = champion_version(client, name)
    if version is None:
        raise ChampionError(f"the registry has no '{CHAMPION}' alias on {name}")
    return download_checkpoint(client, version, dst)
