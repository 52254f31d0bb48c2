"""Promotion in the MLflow model registry: the pair of models one pipeline run registered becomes `champion` only
if its `fvd_16` is lower (better) than the current champion's.

The unit is a pipeline execution (one MLflow parent run): its `train_diffusion` stage run registered a
`pvdm-diffusion` version and its `train_autoencoder` stage run the matching `pvdm-autoencoder` version; its
`evaluate` stage run logged `fvd_16`. The decision is recorded whatever it is: tags on both model versions and on
the parent run (`pvdm.decision` = `promoted` | `kept champion`, `pvdm.fvd_16`, `pvdm.champion_fvd_16`,
`pvdm.decision_reason`). No champion yet: the first model is promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, CHAMPION, DIFFUSION, champion_version

METRIC = "fvd_16"  # lower is better
PROMOTED, KEPT, NO_MODEL = "promoted", "kept champion", "no new model"


@dataclass(frozen=True)
class Candidate:
    parent_run_id: str
    fvd_16: float
    versions: dict[str, str]  # registered model name -> version, diffusion first


@dataclass(frozen=True)
class Decision:
    outcome: str  # PROMOTED, KEPT or NO_MODEL
    reason: str
    fvd_16: float | None = None
    champion_fvd_16: float | None = None
    versions: dict[str, str] = field(default_factory=dict)  # the candidate pair
    champion: dict[str, str] = field(default_factory=dict)  # the champion pair after the decision

    @property
    def promoted(self) -> bool:
        return self.outcome == PROMOTED


def is_better(new: float, champion: float | None) -> bool:
    """The FVD rule: strictly lower wins; no champion (or one without a score) loses; a NaN never wins."""
    if math.isnan(new):
        return False
    return champion is None or math.isnan(champion) or new < champion


def stage_runs(client: MlflowClient, parent_run_id: str) -> dict[str, Run]:
    """The finished stage runs under a pipeline's parent run, the latest per stage (a retried stage ran twice)."""
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    return {r.data.tags["pvdm.stage"]: r for r in runs if "pvdm.stage" in r.data.tags}


def registered_version(client: MlflowClient, name: str, run: Run | None) -> ModelVersion | None:
    if run is None:
        return None
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
    return max(found, key=lambda v: int(v.version), default=None)


def latest_version(client: MlflowClient, name: str) -> ModelVersion | None:
    found = client.search_model_versions(f"name = '{name}'")
    return max(found, key=lambda v: int(v.version), default=None)


def find_candidate(client: MlflowClient, parent_run_id: str) -> Candidate | None:
    """The models this pipeline run evaluated and their score; None when it evaluated nothing.

    The versions its train stages registered; for a stage DVC skipped (a resumed run, or only diffusion params
    changed), the newest registered version: the train stages register one each time they run, so it is the
    checkpoint in data/models (as long as one project feeds the registry)."""
    runs = stage_runs(client, parent_run_id)
    evaluate = runs.get("evaluate")
    if evaluate is None or METRIC not in evaluate.data.metrics:
        return None
    versions = {}
    for name, stage in ((DIFFUSION, "train_diffusion"), (AUTOENCODER, "train_autoencoder")):
        version = registered_version(client, name, runs.get(stage)) or latest_version(client, name)
        if version is not None:
            versions[name] = str(version.version)
    if DIFFUSION not in versions:
        return None
    return Candidate(parent_run_id, float(evaluate.data.metrics[METRIC]), versions)


def version_fvd(client: MlflowClient, version: ModelVersion) -> float | None:
    """A version's recorded `pvdm.fvd_16` tag, else the fvd_16 its pipeline run's evaluate stage logged."""
    if f"pvdm.{METRIC}" in version.tags:
        return float(version.tags[f"pvdm.{METRIC}"])
    if not version.run_id:
        return None
    parent = client.get_run(version.run_id).data.tags.get("mlflow.parentRunId")
    evaluate = stage_runs(client, parent).get("evaluate") if parent else None
    return float(evaluate.data.metrics[METRIC]) if evaluate and METRIC in evaluate.data.metrics else None


def decide(client: MlflowClient, candidate: Candidate) -> Decision:
    """Compare a candidate with the current champion (nothing is changed here)."""
    current = champion_version(client)
    old_fvd = version_fvd(client, current) if current else None
    new = candidate.fvd_16
    pair = candidate.versions
    if current is None:
        return Decision(PROMOTED, f"no champion yet: first model, fvd_16 {new:.4f}", new, None, pair, pair)
    label = f"{DIFFUSION} v{current.version}"
    held = _champion_pair(client)
    if str(current.version) == pair[DIFFUSION]:
        return Decision(KEPT, f"v{current.version} is already the champion", new, old_fvd, pair, held)
    if old_fvd is None:
        text = f"fvd_16 {new:.4f}; the champion ({label}) has no recorded fvd_16"
        return Decision(PROMOTED, text, new, None, pair, pair)
    if is_better(new, old_fvd):
        text = f"fvd_16 {new:.4f} < champion's {old_fvd:.4f} ({label})"
        return Decision(PROMOTED, text, new, old_fvd, pair, pair)
    text = f"fvd_16 {new:.4f} >= champion's {old_fvd:.4f} ({label})"
    return Decision(KEPT, text, new, old_fvd, pair, held)


def _champion_pair(client: MlflowClient) -> dict[str, str]:
    pair = {}
    for name in (DIFFUSION, AUTOENCODER):
        if version := champion_version(client, name):
            pair[name] = str(version.version)
    return pair


def promote_if_better(parent_run_id: str, client: MlflowClient | None = None) -> Decision:
    """Decide for the models of one pipeline run, move the `champion` aliases if they win, record the decision."""
    client = client or MlflowClient()
    candidate = find_candidate(client, parent_run_id)
    if candidate is None:
        decision = Decision(NO_MODEL, "this run evaluated no pvdm-diffusion model (no fvd_16)")
        client.set_tag(parent_run_id, "pvdm.decision", decision.outcome)
        client.set_tag(parent_run_id, "pvdm.decision_reason", decision.reason)
        return decision
    decision = decide(client, candidate)
    if decision.promoted:
        for name, version in candidate.versions.items():
            client.set_registered_model_alias(name, CHAMPION, version)
    record(client, parent_run_id, decision)
    return decision


def record(client: MlflowClient, parent_run_id: str, decision: Decision) -> None:
    tags = {
        "pvdm.decision": decision.outcome,
        "pvdm.decision_reason": decision.reason,
        f"pvdm.{METRIC}": str(decision.fvd_16),  # repr: reads back to the same float
        "pvdm.pipeline_run_id": parent_run_id,
    }
    if decision.champion_fvd_16 is not None:
        tags[f"pvdm.champion_{METRIC}"] = str(decision.champion_fvd_16)
    for name, version in decision.versions.items():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    run_tags = {k: v for k, v in tags.items() if k != "pvdm.pipeline_run_id"}
    run_tags |= {f"pvdm.candidate.{name}": version for name, version in decision.versions.items()}
    run_tags |= {f"pvdm.champion.{name}": version for name, version in decision.champion.items()}
    for key, value in run_tags.items():
        client.set_tag(parent_run_id, key, value)
