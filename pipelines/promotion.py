"""Promotion in the MLflow model registry: the pair of models one pipeline run registered becomes `champion` only
if its `fvd_16` is lower than the current champion's beyond the noise, both measured the same way.

The unit is a pipeline execution (one MLflow parent run): its `train_diffusion` stage run registered a
`pvdm-diffusion` version and its `train_autoencoder` stage run the matching `pvdm-autoencoder` version; its
`evaluate` stage run logged `fvd_16`, its interval, the evaluation set's hash and the fvd_16 features.

Same footing: the champion's score is its score on the challenger's evaluation set, protocol and sampling seeds,
computed again when no such score is cached (pipelines/rescoring.py). Beyond the noise: a paired bootstrap of
fvd(challenger) - fvd(champion) over the features (the same real resamples for both, generated clips paired by
sampling seed; pvdm.metrics.bootstrap) must have its whole interval below -evaluate.promotion_margin; otherwise the
champion stays. The decision is recorded whatever it is: tags on both model versions and on the parent run
(`pvdm.decision` = `promoted` | `kept champion`, `pvdm.decision_reason`, `pvdm.fvd_16`, `pvdm.fvd_16_ci`,
`pvdm.champion_fvd_16`, `pvdm.champion_fvd_16_ci`, `pvdm.fvd_16_difference`, `pvdm.fvd_16_difference_ci`,
`pvdm.promotion_rule`, `pvdm.eval_set_sha256`, `pvdm.champion_rescored`). No champion yet: the first model is
promoted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, CHAMPION, DIFFUSION, ChampionError, champion_version
from pipelines.config import load_pipeline_params
from pipelines.paths import current_root
from pipelines.rescoring import Score, cache_score, cached_score, evaluated_score, rescore, score_key
from pipelines.tracking import safe_tags
from pvdm.config import Params
from pvdm.evaluation import bootstrap_spec
from pvdm.metrics.bootstrap import Interval, paired_difference

METRIC = "fvd_16"  # lower is better
PROMOTED, KEPT, NO_MODEL = "promoted", "kept champion", "no new model"


@dataclass(frozen=True)
class Candidate:
    parent_run_id: str
    fvd_16: float
    versions: dict[str, str]  # registered model name -> version, diffusion first
    score: Score | None = None  # None: an evaluate run from before intervals and features were logged


@dataclass(frozen=True)
class Decision:
    outcome: str  # PROMOTED, KEPT or NO_MODEL
    reason: str
    fvd_16: float | None = None
    champion_fvd_16: float | None = None
    versions: dict[str, str] = field(default_factory=dict)  # the candidate pair
    champion: dict[str, str] = field(default_factory=dict)  # the champion pair after the decision
    fvd_16_ci: list[float] | None = None
    champion_fvd_16_ci: list[float] | None = None
    difference: Interval | None = None  # fvd(challenger) - fvd(champion), paired bootstrap
    rule: str = ""
    eval_set_sha256: str | None = None
    champion_rescored: bool | None = None

    @property
    def promoted(self) -> bool:
        return self.outcome == PROMOTED


def rule_text(params: Params) -> str:
    cfg = params.evaluate
    return (
        f"promote when the {cfg.bootstrap_confidence:.0%} paired-bootstrap interval of fvd_16(challenger) - "
        f"fvd_16(champion) ({cfg.bootstrap_resamples} resamples, seed {cfg.bootstrap_seed}) lies below "
        f"-{cfg.promotion_margin:g}"
    )


def beats(difference: Interval, margin: float) -> bool:
    """The rule: better beyond the noise, the whole interval of the difference below -margin (a NaN never wins)."""
    return difference.high < -margin


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
    return Candidate(parent_run_id, float(evaluate.data.metrics[METRIC]), versions, evaluated_score(evaluate))


def champion_pair(client: MlflowClient) -> dict[str, ModelVersion]:
    return {name: v for name in (DIFFUSION, AUTOENCODER) if (v := champion_version(client, name)) is not None}


def champion_score(
    client: MlflowClient, candidate: Candidate, champion: dict[str, ModelVersion], root: Path, params: Params
) -> Score:
    """The champion's score on the candidate's evaluation set and protocol: cached, or computed now and cached."""
    score = candidate.score
    ae = champion.get(AUTOENCODER)
    if ae is None:
        raise ChampionError(f"the registry has no '{CHAMPION}' alias on {AUTOENCODER}")
    key = score_key(score.eval_set_sha256, score.protocol_sha256, params, str(ae.version))
    return cached_score(champion[DIFFUSION], key) or rescore(client, champion, root, params, key)


def decide(client: MlflowClient, candidate: Candidate, root: Path, params: Params) -> Decision:
    """Compare a candidate with the current champion on the candidate's evaluation set (nothing is moved here;
    the champion's score may be computed and cached)."""
    champion = champion_pair(client)
    pair, new, score = candidate.versions, candidate.fvd_16, candidate.score
    base = {"fvd_16": new, "versions": pair, "rule": rule_text(params),
            "fvd_16_ci": score.ci if score else None,
            "eval_set_sha256": score.eval_set_sha256 if score else None}  # fmt: skip
    if DIFFUSION not in champion:
        return Decision(PROMOTED, f"no champion yet: first model, fvd_16 {new:.4f}", champion=pair, **base)
    held = {name: str(v.version) for name, v in champion.items()}
    label = f"{DIFFUSION} v{champion[DIFFUSION].version}"
    if held[DIFFUSION] == pair[DIFFUSION]:
        return Decision(KEPT, f"v{held[DIFFUSION]} is already the champion", champion=held, **base)
    if score is None:
        text = (
            f"this run's evaluate logged no fvd_16 interval or features: it cannot be compared with {label}"
        )
        return Decision(KEPT, text, champion=held, **base)
    try:
        old = champion_score(client, candidate, champion, root, params)
    except ChampionError as err:
        return Decision(KEPT, f"the champion ({label}) could not be scored on this set: {err}", champion=held,
                        **base)  # fmt: skip
    return _compare(client, candidate, old, label, held, params, base)


def _compare(
    client: MlflowClient,
    candidate: Candidate,
    old: Score,
    label: str,
    held: dict[str, str],
    params: Params,
    base: dict,
) -> Decision:
    new_features, old_features = candidate.score.features(client), old.features(client)
    diff = paired_difference(
        new_features["real"], new_features["fake"], old_features["fake"], bootstrap_spec(params.evaluate)
    )
    margin = params.evaluate.promotion_margin
    won = beats(diff, margin)
    scored = "scored again on this set" if old.rescored else "its cached score on this set"
    text = (
        f"fvd_16 {candidate.fvd_16:.4f} [{candidate.score.ci[0]:.4f}, {candidate.score.ci[1]:.4f}] vs champion "
        f"{label} {old.fvd_16:.4f} [{old.ci[0]:.4f}, {old.ci[1]:.4f}] ({scored}); difference {diff.point:.4f} "
        f"[{diff.low:.4f}, {diff.high:.4f}] {'<' if won else '>='} -{margin:g}: "
        f"{'better beyond the noise' if won else 'not better beyond the noise'}"
    )
    outcome, champion = (PROMOTED, candidate.versions) if won else (KEPT, held)
    return Decision(outcome, text, champion_fvd_16=old.fvd_16, champion=champion, champion_fvd_16_ci=old.ci,
                    difference=diff, champion_rescored=old.rescored, **base)  # fmt: skip


def promote_if_better(
    parent_run_id: str,
    client: MlflowClient | None = None,
    root: Path | None = None,
    params: Params | None = None,
) -> Decision:
    """Decide for the models of one pipeline run, move the `champion` aliases if they win, record the decision.
    `root`: the project whose clip store scores a champion again (default: $PVDM_ROOT or the working directory);
    `params`: its params (default: its params.yaml), whose sample and evaluate sections the re-scoring follows."""
    client = client or MlflowClient()
    root = root or current_root()
    params = params or load_pipeline_params(root / "params.yaml")
    candidate = find_candidate(client, parent_run_id)
    if candidate is None:
        decision = Decision(NO_MODEL, "this run evaluated no pvdm-diffusion model (no fvd_16)")
        tags = safe_tags({"pvdm.decision": decision.outcome, "pvdm.decision_reason": decision.reason})
        for key, value in tags.items():
            client.set_tag(parent_run_id, key, value)
        return decision
    decision = decide(client, candidate, root, params)
    if decision.promoted:
        for name, version in candidate.versions.items():
            client.set_registered_model_alias(name, CHAMPION, version)
    record(client, parent_run_id, decision)
    _cache_own_score(client, candidate, params)
    return decision


def _cache_own_score(client: MlflowClient, candidate: Candidate, params: Params) -> None:
    """The candidate's score on its own set, as the tag a later retrain looks up when this pair is the champion."""
    if candidate.score is None or AUTOENCODER not in candidate.versions:
        return
    key = score_key(candidate.score.eval_set_sha256, candidate.score.protocol_sha256, params,
                    candidate.versions[AUTOENCODER])  # fmt: skip
    cache_score(
        client, client.get_model_version(DIFFUSION, candidate.versions[DIFFUSION]), key, candidate.score
    )


def decision_tags(decision: Decision) -> dict[str, str]:
    """The decision as tags (floats as repr: they read back to the same number; intervals as JSON lists)."""
    tags = {"pvdm.decision": decision.outcome, "pvdm.decision_reason": decision.reason,
            f"pvdm.{METRIC}": str(decision.fvd_16), "pvdm.promotion_rule": decision.rule}  # fmt: skip
    optional = {
        f"pvdm.champion_{METRIC}": decision.champion_fvd_16,
        f"pvdm.{METRIC}_ci": decision.fvd_16_ci,
        f"pvdm.champion_{METRIC}_ci": decision.champion_fvd_16_ci,
        f"pvdm.{METRIC}_difference": decision.difference.point if decision.difference else None,
        f"pvdm.{METRIC}_difference_ci": [decision.difference.low, decision.difference.high]
        if decision.difference
        else None,
        "pvdm.eval_set_sha256": decision.eval_set_sha256,
        "pvdm.champion_rescored": decision.champion_rescored,
    }
    for key, value in optional.items():
        if value is not None:
            tags[key] = json.dumps(value) if isinstance(value, list | bool) else str(value)
    return tags


def record(client: MlflowClient, parent_run_id: str, decision: Decision) -> None:
    tags = safe_tags(decision_tags(decision) | {"pvdm.pipeline_run_id": parent_run_id})
    for name, version in decision.versions.items():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    run_tags = {k: v for k, v in tags.items() if k != "pvdm.pipeline_run_id"}
    run_tags |= {f"pvdm.candidate.{name}": version for name, version in decision.versions.items()}
    run_tags |= {f"pvdm.champion.{name}": version for name, version in decision.champion.items()}
    for key, value in run_tags.items():
        client.set_tag(parent_run_id, key, value)
