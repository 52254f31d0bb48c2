"""Model export shared by the training stages: the DVC out file and the MLflow registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import torch
from mlflow.tracking import MlflowClient

from pipelines.stages.common import inference_payload
from pipelines.tracking import safe_tags
from pvdm.checkpoint import save_checkpoint

PIP_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}", "einops", "pvdm"]


def export_model(
    payload: dict[str, Any],
    path: Path,
    model: torch.nn.Module,
    registered_name: str,
    version_tags: dict[str, str] | None = None,
) -> str:
    """Write the inference checkpoint (a DVC out), log it, and register the model in MLflow; returns the version.

    `version_tags` go on the new model version (the warm start's lineage: what it was fine-tuned from)."""
    save_checkpoint(path, inference_payload(payload))
    mlflow.log_artifact(str(path), artifact_path="checkpoint")
    info = mlflow.pytorch.log_model(
        model.cpu().eval(),
        name=registered_name,
        registered_model_name=registered_name,
        serialization_format="pickle",
        pip_requirements=PIP_REQUIREMENTS,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in safe_tags(version_tags or {}).items():
        client.set_model_version_tag(registered_name, version, key, value)
    return version
