"""Prefect flow `pvdm`: the DVC pipeline, one task per stage, with retries, typed parameters, one MLflow parent run.

    prefect deployment run pvdm/full                                   # served by `make serve` / `pvdm serve`
    prefect deployment run pvdm/full --param overrides='{"diffusion.train.lr": 0.0002}'
    python -m pipelines.flows [--override diffusion.train.lr=0.0002] [--source s3://bucket/videos]   # no server

Each stage task runs `dvc repro --single-item <stage>` in the project, so a Prefect run and `dvc repro` never
disagree and DVC skips what did not change; a failed stage fails its task (retried `orchestration.retries` times)
and the flow run with the stage's error and the end of its output, and the next run picks up where DVC left off.
The MLflow parent run of the flow run is `pipeline-<flow run id>`: every stage run nests under it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from pipelines import tracking
from pipelines.config import IngestConfig, OrchestrationConfig, PipelineParams
from pipelines.ingest import IngestReport, ingest
from pipelines.project import StageResult, apply_overrides, dvc_stages, flow_project, run_dvc_stage
from pipelines.raw_links import hide_broken_links


@dataclass
class PipelineResult:
    pipeline_id: str  # = the Prefect flow run id = PVDM_PIPELINE_ID of the stages
    mlflow_parent_run_id: str
    ran: list[str] = field(default_factory=list)  # stages DVC reproduced
    skipped: list[str] = field(default_factory=list)  # stages DVC found up to date
    ingested: list[str] = field(default_factory=list)  # new raw files copied before the run
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics/eval.json after the run


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE)
def dvc_stage(root: Path, stage: str, pipeline_id: str) -> StageResult:
    """One DVC stage; its output goes to the Prefect log line by line."""
    logger = get_run_logger()
    result = run_dvc_stage(root, stage, pipeline_id, echo=logger.info)
    logger.info("stage %s %s in %.1f s", stage, "ran" if result.ran else "was up to date", result.seconds)
    return result


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_videos(root: Path, cfg: IngestConfig) -> IngestReport:
    """Copy what is new at the source (S3 prefix or folder) into data/raw; verified and incremental."""
    report = ingest(cfg, root / "data" / "raw", project=root)
    get_run_logger().info(report.summary())
    return report


def with_retries(fn: Any, cfg: OrchestrationConfig) -> Any:
    return fn.with_options(retries=cfg.retries, retry_delay_seconds=cfg.retry_delay_seconds)


def ingest_config(params: PipelineParams, source: str | None) -> IngestConfig:
    """The params' ingest section, with `source` (a flow parameter) replacing ingest.source when given."""
    if source is None:
        return params.ingest
    # validated as `pvdm ingest --source` validates it: a flow parameter is untrusted input
    return IngestConfig.model_validate({**params.ingest.model_dump(), "source": source})


def start_parent_run(root: Path, pipeline_id: str) -> str:
    """The MLflow parent run of this flow run (created now, so it exists even if the first stage fails)."""
    tracking.configure(root)
    run_id = tracking.parent_run_id(pipeline_id)
    client = MlflowClient()
    tags = {
        "prefect.flow_run_id": pipeline_id,
        "prefect.flow_run_name": flow_run.name or "",
        "prefect.flow_name": flow_run.flow_name or "",
        "prefect.deployment": deployment.name or "",
        "prefect.flow_run_url": flow_run.ui_url or "",
        "pvdm.git_commit": tracking.git_commit(root),
    }
    for key, value in tags.items():
        if value:
            client.set_tag(run_id, key, value)
    return run_id


def run_stages(root: Path, pipeline_id: str, cfg: OrchestrationConfig) -> list[StageResult]:
    """Every stage of dvc.yaml in dependency order; the first failure (after retries) raises."""
    stage = with_retries(dvc_stage, cfg)
    return [stage(root, name, pipeline_id) for name in dvc_stages(root)]


def run_pipeline(root: Path, params: PipelineParams, ingested: list[str]) -> PipelineResult:
    """Stages under an MLflow parent run named after the current flow run; the parent ends FINISHED or FAILED."""
    pipeline_id = str(flow_run.id)
    if hidden := hide_broken_links(root):
        get_run_logger().warning(
            "data/raw: %d broken symbolic link(s) hidden from DVC, reported by preprocess: %s",
            len(hidden),
            hidden,
        )
    parent = start_parent_run(root, pipeline_id)
    status = "FAILED"
    try:
        stages = run_stages(root, pipeline_id, params.orchestration)
        status = "FINISHED"
    finally:
        MlflowClient().set_terminated(parent, status)
    eval_file = root / "metrics" / "eval.json"
    return PipelineResult(
        pipeline_id,
        parent,
        ran=[s.stage for s in stages if s.ran],
        skipped=[s.stage for s in stages if not s.ran],
        ingested=ingested,
        metrics=json.loads(eval_file.read_text()) if eval_file.is_file() else {},
    )


@flow(name="pvdm", log_prints=True)
def pvdm(
    overrides: dict[str, Any] | None = None, source: str | None = None, project: str | None = None
) -> PipelineResult:
    """The whole pipeline: ingest new videos (when a source is set), then every DVC stage that is out of date.

    Args:
        overrides: params to change before the run, dotted keys like {"diffusion.train.lr": 0.0002};
            validated first (a bad key fails the run before any work), then written to params.yaml.
        source: where new videos come from (s3://bucket/prefix or a folder); default: ingest.source of params.
        project: the project folder; default: $PVDM_ROOT or the working directory of the runner.
    """
    root = flow_project(project)
    params = apply_overrides(root, overrides)
    cfg = ingest_config(params, source)
    ingested = with_retries(ingest_videos, params.orchestration)(root, cfg).copied if cfg.source else []
    result = run_pipeline(root, params, ingested)
    get_run_logger().info(
        "pipeline %s: ran %s, up to date %s; fvd_16 %s",
        result.pipeline_id,
        result.ran or "nothing",
        result.skipped or "nothing",
        result.metrics.get("fvd_16"),
    )
    return result


@click.command()
@click.option("--override", "overrides", multiple=True, help="KEY=VALUE (VALUE read as JSON when it parses)")
@click.option("--source", help="s3://bucket/prefix or a folder of new videos (default: ingest.source)")
@click.option("--project", type=click.Path(file_okay=False), help="project folder (default: here)")
def main(overrides: tuple[str, ...], source: str | None, project: str | None) -> None:
    """Run the `pvdm` flow once in this process (it reports to PREFECT_API_URL when that is set)."""
    logging.basicConfig(level=logging.INFO)
    result = pvdm(overrides=parse_overrides(overrides), source=source, project=project)
    click.echo(json.dumps(asdict(result), indent=2, default=str))


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--override")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


if __name__ == "__main__":
    main()
