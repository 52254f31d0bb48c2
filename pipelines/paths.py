"""The project a stage or flow runs in, defined once: $PVDM_ROOT, else the working directory (DVC runs every
stage from the folder of dvc.yaml), and the fixed paths of dvc.yaml under it."""

from __future__ import annotations

import os
from pathlib import Path


def current_root() -> Path:
    return Path(os.environ.get("PVDM_ROOT") or Path.cwd()).resolve()


ROOT = current_root()
RAW = ROOT / "data" / "raw"
CLIPS = ROOT / "data" / "clips"
LATENTS = ROOT / "data" / "latents"
MODELS = ROOT / "data" / "models"
SAMPLES = ROOT / "data" / "samples"
REPORTS = ROOT / "data" / "reports"
METRICS = ROOT / "metrics"
PLOTS = ROOT / "plots"
