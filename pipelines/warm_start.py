"""Warm starts in the pipeline: `train.init_from` resolved to a local checkpoint for a training stage, the lineage
it leaves in MLflow, and the retrain flow's choice between fine-tuning the champion and training from scratch.

pvdm gets a file and where it came from (pvdm.training.warm_start); the registry lookups are here. The file is not
a DVC dependency of the stage (the champion moves outside DVC's view): its resolved source, the champion's
version or the file's SHA-256, is recorded in the checkpoint (`init`), as MLflow tags on the run and the model
version it registers, and in the Ray run's identity (a new champion is a new run; a killed run resumes its own).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, DIFFUSION, ChampionError, champion_checkpoint, champion_version
from pipelines.config import PipelineParams
from pipelines.tracking import safe_tags
from pvdm.checkpoint import load_checkpoint
from pvdm.config.training import CHAMPION, NO_INIT, TrainConfig
from pvdm.families.registry import autoencoder_record
from pvdm.hashing import sha256_file
from pvdm.training.warm_start import (
    InitialWeights,
    InitSource,
    architecture,
    file_source,
    first_difference,
    read_initial_weights,
)

Kind = Literal["autoencoder", "diffusion"]
REGISTERED: dict[str, str] = {"autoencoder": AUTOENCODER, "diffusion": DIFFUSION}
INIT_TAG = "pvdm.init_from"  # none | champion | the configured path
FINE_TUNED_TAG = "pvdm.fine_tuned_from"  # e.g. "pvdm-diffusion v3", or the path
INIT_SHA_TAG = "pvdm.init_sha256"

log = logging.getLogger("pvdm")


def initial_weights(
    kind: Kind, train: TrainConfig, current: dict[str, Any], root: Path, dst: Path
) -> InitialWeights | None:
    """The weights `<kind>.train.init_from` names, checked against the model's record `current`; None for `none`.

    `champion` is the registry's champion of the model, downloaded under `dst` (MLflow must be configured)."""
    key = f"{kind}.train.init_from"
    if train.init_from == NO_INIT:
        return None
    if train.init_from == CHAMPION:
        found = champion_checkpoint(MlflowClient(), REGISTERED[kind], dst)
        path = found.path
        source = InitSource(CHAMPION, found.label, sha256_file(path), found.version)
    else:
        path = train.init_path(root, key)
        if not path.is_file():
            raise FileNotFoundError(f"{key}: {path} does not exist")
        source = file_source(train.init_from, path)
    weights = read_initial_weights(path, source, current)
    log.warning(
        "%s: fine-tuning from %s for %d steps (sha256 %s)",
        kind,
        source.label,
        train.steps,
        source.sha256[:12],
    )
    return weights


def lineage_tags(init: InitialWeights | None) -> dict[str, str]:
    """The tags that say where a run's (and its model version's) initial weights came from."""
    if init is None:
        return {INIT_TAG: NO_INIT}
    s = init.source
    return {INIT_TAG: s.init_from, FINE_TUNED_TAG: s.label, INIT_SHA_TAG: s.sha256}


def tag_run(init: InitialWeights | None) -> dict[str, str]:
    tags = safe_tags(lineage_tags(init))
    mlflow.set_tags(tags)
    return tags


# --- the retrain flow's choice ----------------------------------------------------------------------------------


@dataclass
class WarmStartPlan:
    overrides: dict[str, str] = field(default_factory=dict)  # dotted params keys to set for this retrain
    messages: list[str] = field(default_factory=list)  # what was decided and why, for the flow's log


def plan_warm_start(
    params: PipelineParams, overrides: dict[str, Any] | None, client: MlflowClient
) -> WarmStartPlan:
    """Fine-tune the champion when the model config is unchanged, else train from scratch, saying which key differs.

    Applies to each model whose `init_from` this retrain's overrides leave unset and params.yaml leaves at `none`
    or `champion` (a checkpoint path there is the user's choice). The diffusion model is fine-tuned only when the
    autoencoder is too: new autoencoder weights make new latents."""
    plan = WarmStartPlan()
    free = [
        kind
        for kind in ("autoencoder", "diffusion")
        if f"{kind}.train.init_from" not in (overrides or {})
        and _train(params, kind).init_from in (NO_INIT, CHAMPION)
    ]
    if not free:
        return plan
    reasons = _differences(params, client)
    for kind in free:
        reason = reasons[kind]
        if kind == "diffusion" and reasons["autoencoder"]:
            reason = f"the autoencoder is trained from scratch ({reasons['autoencoder']})"
        choice = NO_INIT if reason else CHAMPION
        if _train(params, kind).init_from != choice:
            plan.overrides[f"{kind}.train.init_from"] = choice
        plan.messages.append(
            f"{kind}: training from scratch: {reason}"
            if reason
            else f"{kind}: fine-tuning the champion ({reasons[f'{kind}_label']}) for "
            f"{_train(params, kind).steps} steps: the model config is unchanged"
        )
    return plan


def _train(params: PipelineParams, kind: str) -> TrainConfig:
    return params.autoencoder.train if kind == "autoencoder" else params.diffusion.train


def _differences(params: PipelineParams, client: MlflowClient) -> dict[str, str | None]:
    """Per model: why the champion cannot be fine-tuned (None: it can), and the champion's label."""
    current = {
        "autoencoder": autoencoder_record(params.autoencoder, params.data),
        "diffusion": {
            "kind": "diffusion",
            "family": params.diffusion.denoiser.type,
            "config": {"diffusion": params.diffusion.model_dump(mode="json")},
        },
    }
    out: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="pvdm-champion-") as tmp:
        for kind, name in REGISTERED.items():
            version = champion_version(client, name)
            out[f"{kind}_label"] = f"{name} v{version.version}" if version else None
            if version is None:
                out[kind] = f"the registry has no champion of {name}"
                continue
            try:
                payload = _download(client, name, Path(tmp))
            except ChampionError as err:
                out[kind] = str(err)
                continue
            recorded = architecture(payload, with_latent_spec=False)
            diff = first_difference(recorded, architecture(current[kind], with_latent_spec=False))
            out[kind] = (
                f"the config differs from the champion's ({name} v{version.version}): {diff}"
                if diff
                else None
            )
    return out


def _download(client: MlflowClient, name: str, dst: Path) -> dict[str, Any]:
    return load_checkpoint(champion_checkpoint(client, name, dst).path)
