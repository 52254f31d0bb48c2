"""DVC stage `train_autoencoder`: data/clips/ -> data/models/autoencoder.pt, metrics/autoencoder.json, plots.

Training runs on Ray Train (runtime.num_workers workers); rank 0 streams the loss curve to MLflow. After
training the driver scores reconstructions of held-out clips and logs a reconstruction grid.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import torch

from pipelines.ray_train import RayContext
from pipelines.stages.common import (
    CLIPS,
    METRICS,
    MODELS,
    PLOTS,
    REPORTS,
    run_stage,
    train_on_ray,
    write_curve,
    write_json,
)
from pipelines.stages.models import export_model
from pipelines.tracking import mlflow_metric_logger, stage_run
from pvdm.config import Params, parse_params
from pvdm.data.clips import ClipDataset, ClipStore, from_model_tensor
from pvdm.data.video import write_gif
from pvdm.metrics.lpips import load_lpips
from pvdm.metrics.recon import psnr
from pvdm.training.autoencoder import autoencoder_from_checkpoint, train_autoencoder

RECON_CLIPS = 8


def worker(config: dict[str, Any]) -> None:
    params = parse_params(config["params"])
    ctx = RayContext(mlflow_metric_logger(config["tracking_uri"], config["run_id"]), config["torch_threads"])
    dataset = ClipDataset(config["clips"], "train")
    perceptual = load_lpips(params.autoencoder.loss.lpips_net).to(ctx.device)
    train_autoencoder(params.autoencoder, params.data, params.runtime, dataset, ctx, perceptual)


@torch.no_grad()
def score_reconstructions(
    model: torch.nn.Module, dataset: ClipDataset
) -> tuple[dict[str, float], np.ndarray]:
    """PSNR and LPIPS over up to RECON_CLIPS held-out clips, and a grid video (originals over reconstructions)."""
    n = min(RECON_CLIPS, len(dataset))
    x = torch.stack([dataset[i] for i in range(n)])
    rec = torch.cat([model(x[i : i + 4]) for i in range(0, n, 4)]).clamp(-1, 1)
    lpips = load_lpips("vgg")
    frames = x.transpose(1, 2).flatten(0, 1)  # (n*T, 3, H, W)
    rec_frames = rec.transpose(1, 2).flatten(0, 1)
    scores = {"val_psnr": float(psnr(x, rec).mean()), "val_lpips": float(lpips(rec_frames, frames).mean())}
    top = np.concatenate([from_model_tensor(c) for c in x], axis=2)  # (T, H, n*W, 3)
    bottom = np.concatenate([from_model_tensor(c) for c in rec], axis=2)
    return scores, np.concatenate([top, bottom], axis=1)


def main(params: Params) -> None:
    section = {
        "data": params.data.model_dump(),
        "autoencoder": params.autoencoder.model_dump(),
        "runtime": params.runtime.model_dump(),
    }
    with stage_run("train_autoencoder", section, deps=["data/clips"]) as run:
        payload = train_on_ray(
            "train_autoencoder", worker, params, section, run.info.run_id,
            data={"clips": CLIPS}, run_inputs=[CLIPS / "manifest.parquet"],
        )  # fmt: skip
        model = autoencoder_from_checkpoint(payload)
        split = (
            "test" if ClipStore(CLIPS).indices("test") else "train"
        )  # tiny datasets may have no test split
        scores, grid = score_reconstructions(model, ClipDataset(CLIPS, split))
        scores |= {"steps": payload["step"], "final_loss": payload["history"][-1]["loss"]}
        mlflow.log_metrics({k: float(v) for k, v in scores.items()})
        write_json(METRICS / "autoencoder.json", scores | {"val_split": split})
        write_curve(PLOTS / "autoencoder.csv", payload["history"])
        grid_path = write_gif(REPORTS / "recon_grid.gif", grid, fps=8)
        mlflow.log_artifact(str(grid_path), artifact_path="reconstructions")
        export_model(payload, MODELS / "autoencoder.pt", model, "pvdm-autoencoder")


if __name__ == "__main__":
    run_stage(main)
