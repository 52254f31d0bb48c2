"""DVC stage `evaluate`: clips + samples + autoencoder -> metrics/eval.json (FVD, reconstruction, baselines).

With RAY_ADDRESS set, the scoring (I3D features, reconstructions) runs as a Ray task on a worker node
(pipelines.cluster.run_heavy); the metrics are written and logged here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from pipelines.cluster import ClusterError, run_heavy
from pipelines.stages.common import CLIPS, METRICS, MODELS, ROOT, SAMPLES, run_stage, write_json
from pipelines.tracking import stage_run
from pvdm.checkpoint import load_checkpoint
from pvdm.config import EvaluateConfig, Params
from pvdm.data.clips import ClipStore
from pvdm.device import resolve_device
from pvdm.evaluation import evaluate_run
from pvdm.families.registry import load_autoencoder
from pvdm.hashing import sha256_file

AE = MODELS / "autoencoder.pt"


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
        data_key = sha256_file(CLIPS / "manifest.parquet")
        inputs = [str(p.relative_to(ROOT)) for p in (CLIPS, SAMPLES, AE)]
        results = run_heavy("evaluate", score, cfg, data_key, runtime=params.runtime, root=ROOT, inputs=inputs,
                            outputs=[])  # fmt: skip
        write_json(METRICS / "eval.json", results)
        mlflow.log_metrics({k: float(v) for k, v in results.items() if isinstance(v, int | float)})
        mlflow.log_dict(results, "eval.json")


if __name__ == "__main__":
    run_stage(main, expected=(ClusterError,))
