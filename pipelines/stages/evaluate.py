"""DVC stage `evaluate`: clips + samples + autoencoder -> metrics/eval.json (FVD, reconstruction, baselines)."""

from __future__ import annotations

import mlflow

from pipelines.stages.common import CLIPS, METRICS, MODELS, SAMPLES, file_sha256, run_stage, write_json
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import Params
from pvdm.data.clips import ClipStore
from pvdm.device import resolve_device
from pvdm.evaluation import evaluate_run
from pvdm.families.registry import load_autoencoder


def main(params: Params) -> None:
    cfg = params.evaluate
    with stage_run(
        "evaluate",
        {"evaluate": cfg.model_dump()},
        deps=["data/clips", "data/samples", "data/models/autoencoder.pt"],
    ):
        device = resolve_device(cfg.device)
        ae = load_autoencoder(load_checkpoint(MODELS / "autoencoder.pt")).to(device)
        data_key = file_sha256(CLIPS / "manifest.parquet")
        results = evaluate_run(cfg, ClipStore(CLIPS), SAMPLES, ae, device, data_key)
        write_json(METRICS / "eval.json", results)
        mlflow.log_metrics({k: float(v) for k, v in results.items() if isinstance(v, int | float)})
        mlflow.log_dict(results, "eval.json")


if __name__ == "__main__":
    run_stage(main)
