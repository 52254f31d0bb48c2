"""The two Prefect deployments of a project, served by this process or registered with a work pool.

    pvdm/full                the whole pipeline on demand:  prefect deployment run pvdm/full
    pvdm-retrain/scheduled   retrain on new data, on `orchestration.retrain_cron` of params.yaml

    python -m pipelines.deployments serve                 # `make serve`, `pvdm serve`: runs flows in subprocesses here
    python -m pipelines.deployments deploy --pool pvdm    # register with a process work pool, then:
    prefect worker start --pool pvdm                      # (from any machine with the project at the same path)

Both need PREFECT_API_URL (a server: `prefect server start`, or `make services`). The schedule is read from
params.yaml when serving or deploying: after changing `orchestration.retrain_cron`, serve (or deploy) again.
"""

from __future__ import annotations

from pathlib import Path

import click
from prefect import deploy, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import Flow
from prefect.schedules import Cron

from pipelines.config import load_pipeline_params
from pipelines.flows import pvdm
from pipelines.project import project_root
from pipelines.retrain import retrain

FULL, SCHEDULED = "full", "scheduled"
TAGS = ["pvdm"]


def build(root: Path, full_flow: Flow = pvdm, retrain_flow: Flow = retrain) -> list[RunnerDeployment]:
    """`pvdm/full` and `pvdm-retrain/scheduled` for the project at `root`, the schedule from its params."""
    cfg = load_pipeline_params(root / "params.yaml").orchestration
    schedules = [Cron(cfg.retrain_cron, timezone=cfg.timezone)] if cfg.retrain_cron else None
    params = {"project": str(root)}
    return [
        full_flow.to_deployment(
            name=FULL,
            parameters=params,
            tags=TAGS,
            description="The whole pvdm pipeline (DVC stages as Prefect tasks), MLflow parent run per flow run.",
        ),
        retrain_flow.to_deployment(
            name=SCHEDULED,
            parameters=params,
            schedules=schedules,
            tags=TAGS,
            description="Look for new videos at ingest.source; if any, ingest, rerun, promote if fvd_16 is better.",
        ),
    ]


@click.group()
def main() -> None:
    """Serve the pvdm deployments, or register them with a work pool."""


@main.command("serve")
@click.option("--project", type=click.Path(file_okay=False), help="project folder (default: here)")
@click.option(
    "--limit", default=1, show_default=True, help="flow runs at once (DVC runs one repro per project)"
)
def serve_command(project: str | None, limit: int) -> None:
    """Create the deployments and run their flow runs in subprocesses of this process until Ctrl-C."""
    serve(*build(project_root(project)), limit=limit)


@main.command("deploy")
@click.option(
    "--pool", required=True, help="a work pool of type `process` (prefect work-pool create NAME -t process)"
)
@click.option("--project", type=click.Path(file_okay=False), help="project folder (default: here)")
def deploy_command(pool: str, project: str | None) -> None:
    """Register the deployments with a work pool; a worker (`prefect worker start --pool POOL`) runs them."""
    root = project_root(project)
    flows = [
        Flow.from_source(str(root), entrypoint=e)
        for e in ("pipelines/flows.py:pvdm", "pipelines/retrain.py:retrain")
    ]
    ids = deploy(
        *build(root, *flows), work_pool_name=pool, build=False, push=False, print_next_steps_message=False
    )
    click.echo(f"registered {len(ids)} deployments with work pool {pool!r}: start a worker with\n"
               f"  prefect worker start --pool {pool}")  # fmt: skip


if __name__ == "__main__":
    main()
