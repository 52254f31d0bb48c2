"""Imported weights registered in MLflow like trained ones (`pvdm import --register`).

One MLflow run per imported checkpoint, in the pipeline's experiment and store (pipelines.tracking.configure:
MLFLOW_TRACKING_URI, else the project's SQLite file), tagged `pvdm.kind: import`. Its params are the source's
record (file name, SHA-256, the `pvdm import` option it was read with) and the checkpoint's family and config; the
checkpoint is logged and registered by the training stages' own `export_model`, under their names
(pvdm-autoencoder, pvdm-diffusion), so a champion download, a warm start from a promoted import and promotion's
"newest version" read it as they read a trained one. The version's tags say where its weights came from: the
source's file name (never its folder, which may name a user, a mount or a signed URL) and SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch

from pipelines.champion import AUTOENCODER, DIFFUSION
from pipelines.stages.models import export_model
from pipelines.tracking import configure, flatten, safe_tags
from pvdm.checkpoint import load_checkpoint
from pvdm.errors import CheckpointError
from pvdm.families.registry import load_autoencoder, load_diffusion
from pvdm.importing import IMPORTED_KEY

REGISTERED = {"autoencoder": AUTOENCODER, "diffusion": DIFFUSION}  # checkpoint kind -> registered model


@dataclass(frozen=True)
class Registration:
    name: str  # registered model
    version: str
    run_id: str
    source: str  # the imported file's name

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def import_tags(payload: dict[str, Any]) -> dict[str, str]:
    """The run's and the model version's tags: where the weights came from and what they are."""
    source = payload[IMPORTED_KEY]
    return safe_tags({"pvdm.imported_from": source["file"], "pvdm.source_sha256": source["sha256"],
                      "pvdm.imported_as": source["read_as"], "pvdm.family": payload["family"]})  # fmt: skip


def _model(payload: dict[str, Any]) -> torch.nn.Module:
    """The network export_model logs, as the training stages build it (the denoiser with its EMA weights)."""
    if payload["kind"] == "autoencoder":
        return load_autoencoder(payload)
    return load_diffusion(payload).model


def register_imported(path: Path, root: Path) -> Registration:
    """Log and register the checkpoint `pvdm import` wrote at `path` (rewritten in place by export_model, as the
    training stages write their outs) in the MLflow store of the project at `root`."""
    payload = load_checkpoint(path)
    if IMPORTED_KEY not in payload or payload.get("kind") not in REGISTERED:
        raise CheckpointError(
            f"{path}: not a checkpoint `pvdm import` wrote (no record of its source): import the file again"
        )
    name, tags = REGISTERED[payload["kind"]], import_tags(payload)
    configure(root)
    with mlflow.start_run(run_name=f"import-{payload['kind']}", tags=tags | {"pvdm.kind": "import"}) as run:
        mlflow.log_params(
            flatten({"source": payload[IMPORTED_KEY], "family": payload["family"], **payload["config"]})
        )
        version = export_model(payload, path, _model(payload), name, version_tags=tags)
    return Registration(name, version, run.info.run_id, payload[IMPORTED_KEY]["file"])
