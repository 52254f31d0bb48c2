"""What every stage script shares: the fixed paths of dvc.yaml, params loading, JSON/CSV outputs."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow

from pipelines.ray_train import TrainingError, final_payload, fit
from pvdm.config import ConfigError, Params, RuntimeConfig, load_params
from pvdm.data.preprocess import PreprocessError
from pvdm.training.checkpoint import CheckpointError

# Paths are relative to the project the stage runs in: DVC runs every stage from the folder of dvc.yaml.
ROOT = Path(os.environ.get("PVDM_ROOT") or Path.cwd()).resolve()
RAW = ROOT / "data" / "raw"
CLIPS = ROOT / "data" / "clips"
LATENTS = ROOT / "data" / "latents"
MODELS = ROOT / "data" / "models"
SAMPLES = ROOT / "data" / "samples"
REPORTS = ROOT / "data" / "reports"
METRICS = ROOT / "metrics"
PLOTS = ROOT / "plots"

log = logging.getLogger("pvdm")
# What a stage reports as a one-line error: bad inputs and failed training, not programming errors.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    CheckpointError,
    PreprocessError,
    TrainingError,
)


def run_stage(main: Callable[[Params], None]) -> None:
    """Load and validate params.yaml before any work; a bad value is one line naming the key, exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("great_expectations", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        params = load_params(ROOT / "params.yaml")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        main(params)
    except EXPECTED_FAILURES as err:  # a clear one-line reason instead of a traceback; the details are logged
        log.debug("stage failed", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """A training curve as CSV (step first), the format `dvc plots show` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ["step", *sorted({k for r in rows for k in r} - {"step"})]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k == "step" else v) for k, v in row.items()})


def run_name(stage: str, section: dict[str, Any], *inputs: Path) -> str:
    """Ray run name: the same params and inputs resume the same run after a crash; anything else starts fresh."""
    h = hashlib.sha256(json.dumps(section, sort_keys=True).encode())
    for path in inputs:
        h.update(path.read_bytes())
    return f"{stage}-{h.hexdigest()[:12]}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ray_storage(runtime: RuntimeConfig) -> Path | str:
    """Ray Train's storage: not a DVC out, so it survives a failed stage and the rerun resumes from it."""
    return runtime.ray_storage if "://" in runtime.ray_storage else ROOT / runtime.ray_storage


def train_on_ray(
    stage: str,
    worker: Callable[[dict[str, Any]], None],
    params: Params,
    section: dict[str, Any],
    run_id: str,
    data: dict[str, Path],
    run_inputs: list[Path],
) -> dict[str, Any]:
    """Run a training stage's `worker` on Ray Train and return its final checkpoint payload.

    The worker gets the params, the `data` paths (as strings), and where to log (MLflow run `run_id`). The Ray
    run is named by the stage's params section and the bytes of `run_inputs`, so a rerun resumes it.
    """
    config = {
        "params": params.model_dump(mode="json"),
        "tracking_uri": mlflow.get_tracking_uri(),
        "run_id": run_id,
    } | {key: str(path) for key, path in data.items()}
    name = run_name(stage, section, *run_inputs)
    return final_payload(
        fit(worker, config, params.runtime, name=name, storage_path=ray_storage(params.runtime))
    )


def inference_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A training checkpoint without optimizer, discriminator and RNG state: what sampling and evaluation need."""
    drop = {"optimizer", "disc_optimizer", "discriminator", "rng"}
    return {k: v for k, v in payload.items() if k not in drop}
