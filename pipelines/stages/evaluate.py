"""DVC stage `evaluate`: clips + samples + autoencoder -> metrics/eval.json (FVD, reconstruction, baselines).

With RAY_ADDRESS set, the scoring (I3D features, reconstructions) runs as a Ray task on a worker node
(pipelines.cluster.run_heavy); the metrics are written and logged here."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from pipelines.cluster import ClusterError, run_heavy
from pipelines.stages.common import CLIPS, METRICS, MODELS, ROOT, SAMPLES, run_stage, write_json
from pipelines.tracking import safe_tags, stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import EvaluateConfig, Params
from pvdm.config.data import DataConfig
from pvdm.data.clips import ClipStore
from pvdm.device import resolve_device
from pvdm.evaluation import FEATURES, check_clips_fit, evaluate_run
from pvdm.families.registry import load_autoencoder
from pvdm.hashing import sha256_file

AE = MODELS / "autoencoder.pt"
FEATURES_ARTIFACT = (
    "fvd_16_features.npz"  # real (n_real, 400) and fake (n_fake, 400) float32: promotion reads it
)
TAGS = ("eval_set_sha256", "protocol_sha256", "eval_set_id")  # what promotion keys a comparable score by


def score(inputs: Path, _outputs: Path, cfg: EvaluateConfig, data_key: str) -> dict[str, Any]:
    """Every metric of eval.json, from the clips, samples and autoencoder under `inputs`."""
    device = resolve_device(cfg.device)
    ae = load_autoencoder(load_checkpoint(inputs / AE.relative_to(ROOT))).to(device)
    store = ClipStore(inputs / CLIPS.relative_to(ROOT))
    return evaluate_run(cfg, store, inputs / SAMPLES.relative_to(ROOT), ae, device, data_key)


def main(params: Params) -> None:
    cfg = params.evaluate
    with stage_run(
        "evaluate",
        {"evaluate": cfg.model_dump()},
        deps=["data/clips", "data/samples", "data/models/autoencoder.pt"],
    ):
        check_inputs()
        data_key = sha256_file(CLIPS / "manifest.parquet")
        inputs = [str(p.relative_to(ROOT)) for p in (CLIPS, SAMPLES, AE)]
        results = run_heavy("evaluate", score, cfg, data_key, runtime=params.runtime, root=ROOT, inputs=inputs,
                            outputs=[])  # fmt: skip
        features = results.pop(FEATURES)
        write_json(METRICS / "eval.json", results)
        log_results(results, features)


def check_inputs() -> None:
    """Before any scoring, here on the driver: the clips are the videos the autoencoder makes (an imported model
    records its own data config, which params.yaml's data section may not match)."""
    recorded = DataConfig.model_validate(load_checkpoint(AE)["config"]["data"])
    check_clips_fit(ClipStore(CLIPS), recorded, str(AE.relative_to(ROOT)))


def log_results(results: dict[str, Any], features: dict[str, np.ndarray]) -> None:
    """Metrics (fvd_16_ci as _low / _high), the set and protocol hashes as tags, eval.json and the features."""
    metrics = {k: float(v) for k, v in results.items() if isinstance(v, int | float) and k != "eval_set_id"}
    low, high = results["fvd_16_ci"]
    mlflow.log_metrics(metrics | {"fvd_16_ci_low": low, "fvd_16_ci_high": high})
    mlflow.set_tags(safe_tags({f"pvdm.{k}": results[k] for k in TAGS if k in results}))
    mlflow.log_dict(results, "eval.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FEATURES_ARTIFACT
        np.savez(path, real=features["real"], fake=features["fake"])
        mlflow.log_artifact(str(path))


if __name__ == "__main__":
    run_stage(main, expected=(ClusterError,))
