"""MLflow tracking for the stages: one run per stage, nested under one parent run per pipeline execution.

Default store: SQLite in the project (`mlflow.db`, artifacts in `mlartifacts/`), nothing to start;
`MLFLOW_TRACKING_URI` points at a server instead. A pipeline execution is identified by `PVDM_PIPELINE_ID`
(set by `make demo` and the Prefect flow) or, for a plain `dvc repro`, by the git commit plus the params
file, so the stages of one repro land under the same parent and two executions compare side by side.
Secrets never reach MLflow: params come from params.yaml only, and credential-like keys are dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pipelines.paths import ROOT
from pvdm.redact import redact, redact_value

EXPERIMENT = os.environ.get("PVDM_EXPERIMENT", "pvdm")
SECRET_WORDS = ("secret", "password", "token", "access_key", "credential")
# The experiment's kind, as MLflow 3 records it (it spares the UI's "what kind of experiment?" prompt). It does not
# choose the view: MLflow 3.17's UI takes GenAI or model training from the link (`?workflowType=machine_learning`)
# or the browser's saved switch, and a fresh browser opens `#/experiments/<id>` on the GenAI overview, where
# training runs are not shown (seen in Chromium, tests/pipelines/test_mlflow_ui.py). Hence experiment_ui_url.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# MLflow stores a dataset digest in 36 characters: the first 32 hex digits of a SHA-256 (128 bits) go there, the
# whole digest is an input tag.
DATASET_DIGEST_CHARS = 32


def configure(root: Path = ROOT) -> str:
    """Point MLflow at the project's SQLite store unless MLFLOW_TRACKING_URI is set; returns the URI.

    Telemetry is off unless the user asked for it (the Makefile and the tests also say so)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        local = uri.startswith("sqlite:") or uri.startswith("file:")
        location = (root / "mlartifacts").as_uri() if local else None
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # another stage created it first
            mlflow.create_experiment(
                EXPERIMENT, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
    experiment = mlflow.set_experiment(EXPERIMENT)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:  # created before pvdm set it
        MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return uri


def experiment_ui_url(server: str, experiment_id: str) -> str:
    """A link that opens the experiment on the UI's model-training view (runs, their datasets and models)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def safe_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them (strings), with the credentials of any URL in them masked (pvdm.redact): every
    tag pvdm sets on a run or a model version goes through here, as params go through `flatten`."""
    return {key: redact(str(value)) for key, value in tags.items()}


def log_dataset_input(name: str, source: Path, sha256: str, context: str = "training", **tags: str) -> None:
    """Log a data store the active run read as an MLflow dataset input (the runs table's Dataset column): its
    digest is the store's hash (the first 32 hex digits; all 64 in the `pvdm.sha256` tag)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # MLflow registers its local source twice and warns that it picked one
        warnings.simplefilter("ignore", UserWarning)
        origin = resolve_dataset_source(
            redact(str(source))
        )  # LocalArtifactDatasetSource: type "local", the path
    dataset = MetaDataset(origin, name=name, digest=sha256[:DATASET_DIGEST_CHARS])
    mlflow.log_input(dataset, context=context, tags=safe_tags({"pvdm.sha256": sha256, **tags}))


def git_commit(root: Path = ROOT) -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def pipeline_id(root: Path = ROOT) -> str:
    if os.environ.get("PVDM_PIPELINE_ID"):
        return os.environ["PVDM_PIPELINE_ID"]
    params = (root / "params.yaml").read_bytes() if (root / "params.yaml").is_file() else b""
    return hashlib.sha256(git_commit(root).encode() + params).hexdigest()[:12]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; credential-like keys are dropped, credentials inside URLs masked."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if any(word in name.lower() for word in SECRET_WORDS):
            continue
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = redact_value(value)
    return out


def dvc_lineage(deps: list[str], root: Path = ROOT) -> dict[str, str]:
    """DVC's recorded md5 of each dependency that an upstream stage produced (from dvc.lock)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    hashes = {}
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") in deps:
                hashes[f"dvc.{out['path']}"] = out.get("md5", "")
    return hashes


def parent_run_id(pid: str) -> str:
    """The parent run of this pipeline execution, created on first use."""
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`pvdm.pipeline_id` = '{pid}' and tags.`pvdm.kind` = 'pipeline'",
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment.experiment_id,
        run_name=f"pipeline-{pid}",
        tags={"pvdm.pipeline_id": pid, "pvdm.kind": "pipeline", "pvdm.git_commit": git_commit()},
    )
    return run.info.run_id


LAST_STAGE = "evaluate"  # when it finishes, the pipeline's parent run is finished too


class StageTerminated(BaseException):
    """SIGTERM reached a stage: its MLflow run ends as KILLED (not left RUNNING forever)."""


def _terminate(signum: int, frame: Any) -> None:
    raise StageTerminated(f"signal {signum}")


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any], deps: list[str]) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one stage with its params, lineage and tags; nested under the pipeline's parent.

    It ends FINISHED, FAILED (an error) or KILLED (SIGTERM); a failed stage fails the parent run, and the last
    stage finishing finishes it."""
    configure()
    pid = pipeline_id()
    parent = parent_run_id(pid)
    tags = {
        "mlflow.parentRunId": parent,
        "pvdm.pipeline_id": pid,
        "pvdm.stage": stage,
        "pvdm.kind": "stage",
        "pvdm.git_commit": git_commit(),
        **dvc_lineage(deps),
    }
    previous = (
        signal.signal(signal.SIGTERM, _terminate)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    client, run_id = MlflowClient(), None
    try:
        with mlflow.start_run(run_name=stage, tags=tags) as run:
            run_id = run.info.run_id
            mlflow.log_params(flatten(params))
            yield run
    except StageTerminated:
        if run_id is not None:
            client.set_terminated(run_id, "KILLED")
        client.set_terminated(parent, "KILLED")
        raise SystemExit(143) from None
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if stage == LAST_STAGE:
        client.set_terminated(parent, "FINISHED")


class MetricSink:
    """Step metrics into one MLflow run through the client API, from any process (a Ray worker): picklable."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self._client: MlflowClient | None = None

    @classmethod
    def for_active_run(cls, run: mlflow.ActiveRun) -> MetricSink:
        return cls(mlflow.get_tracking_uri(), run.info.run_id)

    def __call__(self, metrics: Mapping[str, float], step: int) -> None:
        self._client = self._client or MlflowClient(self.tracking_uri)
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "step"]
        self._client.log_batch(self.run_id, metrics=batch)

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id, "_client": None}
