"""What every stage script shares: the fixed paths of dvc.yaml, params loading, JSON/CSV outputs.

No Ray here: only the two training stages import pipelines.ray_train."""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.config import PipelineParams, load_pipeline_params
from pipelines.paths import CLIPS, LATENTS, METRICS, MODELS, PLOTS, RAW, REPORTS, ROOT, SAMPLES
from pvdm.config import ConfigError
from pvdm.data.labels import LabelError
from pvdm.errors import CheckpointError, PreprocessError
from pvdm.families.errors import FamilyError
from pvdm.hashing import sha256_file
from pvdm.redact import redact

__all__ = ["CLIPS", "LATENTS", "METRICS", "MODELS", "PLOTS", "RAW", "REPORTS", "ROOT", "SAMPLES"]

log = logging.getLogger("pvdm")
# What a stage reports as a one-line error: bad inputs and failed training, not programming errors.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    CheckpointError,
    PreprocessError,
    FamilyError,
    LabelError,
)


def run_stage(main: Callable[[PipelineParams], None], expected: tuple[type[BaseException], ...] = ()) -> None:
    """Load and validate params.yaml before any work; a bad value is one line naming the key, exit code 2.

    `expected`: more error types the stage reports as one line (the training stages add TrainingError)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("great_expectations", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        params = load_pipeline_params(ROOT / "params.yaml")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        main(params)
    except (
        *EXPECTED_FAILURES,
        *expected,
    ) as err:  # a clear one-line reason instead of a traceback; the details are logged
        log.debug("stage failed", exc_info=True)
        print(f"error: {redact(str(err))}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        # The process ends now. Its last garbage collections at exit would walk every object of the libraries it
        # loaded (0.7 s with MLflow and pandas, on every stage run) to free memory the system takes back anyway;
        # frozen objects are not walked. Files, runs and child processes are closed by then or at exit as before.
        # Not where torch is loaded: torch brings triton, whose nanobind extension reports every object still alive
        # at exit as a leak on stderr, burying the stage's last line (and those stages run minutes, not seconds).
        if "torch" not in sys.modules:
            gc.freeze()


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


def inference_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A training checkpoint without optimizer, discriminator and RNG state: what sampling and evaluation need."""
    drop = {"optimizer", "disc_optimizer", "discriminator", "rng"}
    return {k: v for k, v in payload.items() if k not in drop}


def clip_store_sha256(clips: Path = CLIPS) -> str:
    """The clip store's hash: its manifest's SHA-256 (every clip's content hash is in it), evaluate's data_key."""
    return sha256_file(clips / "manifest.parquet")


def latent_store_sha256(latents: Path = LATENTS) -> str:
    """The latent store's hash: SHA-256 over its files' SHA-256s (meta.json names the autoencoder checkpoint's,
    the manifest the clips', latents.npy the encodings; absent for `clips` storage)."""
    h = hashlib.sha256()
    for name in ("meta.json", "manifest.parquet", "latents.npy"):
        if (latents / name).is_file():
            h.update(f"{name}:{sha256_file(latents / name)}\n".encode())
    return h.hexdigest()
