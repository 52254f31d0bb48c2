"""Prefect flow `pvdm-retrain`: retrain when new videos land, promote the new models only if their FVD is better.

    prefect deployment run pvdm-retrain/scheduled       # also runs on `orchestration.retrain_cron` (params.yaml)

1. Look for new videos at the source (`ingest.source`: an S3 prefix, read with boto3, or a folder) and copy them
   into data/raw (verified, incremental: see pipelines/ingest.py).
2. Nothing new and the pipeline up to date: end at once, saying so (no MLflow run, no stage started). Nothing new
   but `dvc status` shows stages out of date (an earlier retrain failed half-way): carry on, DVC resumes it.
3. Warm start: when the model config is the champion's, both models fine-tune it (`train.init_from: champion`),
   else they train from scratch, the log saying which key differs (pipelines/warm_start.py).
4. Run the pipeline (pipelines/flows.py: one task per DVC stage, one MLflow parent run for this flow run).
5. Compare the new `fvd_16` with the registry's `champion` scored on the same evaluation set (scored again when
   needed) and move the alias only if the new one is better beyond the noise (a paired bootstrap); the decision, both
   scores and intervals are recorded as tags on the model versions and the parent run (pipelines/promotion.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from pipelines import promotion
from pipelines.config import PipelineParams
from pipelines.flows import PipelineResult, ingest_config, ingest_videos, run_pipeline, with_retries
from pipelines.project import apply_overrides, dvc_pending, flow_project
from pipelines.tracking import configure
from pipelines.warm_start import plan_warm_start


@dataclass
class RetrainResult:
    outcome: str  # "skipped" | promotion.PROMOTED | promotion.KEPT | promotion.NO_MODEL
    message: str
    new_videos: list[str] = field(default_factory=list)
    pipeline: PipelineResult | None = None
    decision: promotion.Decision | None = None


@task(name="promote-if-better", cache_policy=NO_CACHE)
def promote(parent_run_id: str, root: Path, params: PipelineParams) -> promotion.Decision:
    decision = promotion.promote_if_better(parent_run_id, root=root, params=params)
    get_run_logger().info("%s: %s", decision.outcome, decision.reason)
    return decision


@task(name="pipeline-status", cache_policy=NO_CACHE)
def pending_stages(root: Path) -> list[str]:
    return dvc_pending(root)


@task(name="warm-start", cache_policy=NO_CACHE)
def warm_start(root: Path, params: PipelineParams, overrides: dict[str, Any] | None) -> PipelineParams:
    """Fine-tune the champion when the model config is unchanged, else train from scratch (pipelines/warm_start.py);
    the choice is written to params.yaml like any override, and said in the log."""
    configure(root)
    plan = plan_warm_start(params, overrides, MlflowClient())
    for line in plan.messages:
        get_run_logger().info("warm start: %s", line)
    return apply_overrides(root, plan.overrides) if plan.overrides else params


def new_videos(copied: list[str], extensions: list[str]) -> list[str]:
    return [p for p in copied if Path(p).suffix.lower() in extensions]


@flow(name="pvdm-retrain", log_prints=True)
def retrain(
    source: str | None = None,
    overrides: dict[str, Any] | None = None,
    project: str | None = None,
    force: bool = False,
) -> State:
    """Ingest new videos; if there are any, rerun the pipeline and promote the new models if they beat the champion.

    Args:
        source: s3://bucket/prefix or a folder to look at; default: ingest.source of params.yaml.
        overrides: params changes for this retrain (dotted keys), validated before any work.
        project: the project folder; default: $PVDM_ROOT or the working directory of the runner.
        force: rerun the pipeline (and compare) even when nothing is new.
    """
    logger = get_run_logger()
    root = flow_project(project)
    params = apply_overrides(root, overrides)
    cfg = ingest_config(params, source)
    if not cfg.source:
        return _done(
            RetrainResult("skipped", "no data source: set ingest.source (or the `source` parameter)")
        )
    report = with_retries(ingest_videos, params.orchestration)(root, cfg)
    videos = new_videos(report.copied, params.preprocess.extensions)
    if not videos and not force:
        pending = pending_stages(root)
        if not pending:
            text = f"nothing new at {report.source} ({report.unchanged} files already ingested); pipeline not run"
            return _done(RetrainResult("skipped", text))
        logger.info(
            "no new videos, but stages are out of date (%s): resuming the pipeline", ", ".join(pending)
        )
    logger.info("%d new videos from %s: %s", len(videos), report.source, ", ".join(videos) or "-")
    params = warm_start(root, params, overrides)
    result = run_pipeline(root, params, report.copied)
    decision = promote(result.mlflow_parent_run_id, root, params)
    return _done(RetrainResult(decision.outcome, decision.reason, videos, result, decision))


def _done(result: RetrainResult) -> State:
    """The flow's final state: Completed, with the outcome and why (for a decision: both scores, their intervals,
    the paired difference and the rule) as the message the UI shows next to the run."""
    message = f"{result.outcome}: {result.message}"
    if result.decision is not None and result.decision.rule:
        message += f" (rule: {result.decision.rule})"
    get_run_logger().info("retrain: %s", message)
    return Completed(message=message, data=asdict(result))
