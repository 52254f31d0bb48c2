"""DVC stage `sample`: trained models -> data/samples/ (16-frame clips and long videos as mp4, preview gifs).

With RAY_ADDRESS set, sampling runs as a Ray task on a worker node (pipelines.cluster.run_heavy); MLflow logging
stays on the driver."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import torch

from pipelines.cluster import ClusterError, run_heavy
from pipelines.stages.common import MODELS, ROOT, SAMPLES, run_stage
from pipelines.tracking import stage_run
from pvdm.config import Params, SampleConfig
from pvdm.data.clips import from_model_tensor
from pvdm.data.layout import SAMPLE_FRAMES, SAMPLE_LABELS
from pvdm.data.video import write_gif, write_video
from pvdm.device import resolve_device
from pvdm.sampling import VideoModel, draw_labels, make_generator, sample_clips, sample_long_videos

PREVIEW = 8  # videos side by side in a preview gif


def write_all(videos: torch.Tensor, folder, stem: str, fps: float) -> list[np.ndarray]:
    """The videos as mp4 files (to watch) and, exactly as the sampler made them, as uint8 frames.npy
    (N, T, H, W, 3): what evaluate scores, so no video codec stands between the sampler and the FVD."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [from_model_tensor(v) for v in videos]
    for i, f in enumerate(frames):
        write_video(folder / f"{stem}_{i:04d}.mp4", f, fps)
    if frames:
        np.save(folder / SAMPLE_FRAMES, np.stack(frames))
    return frames


def write_labels(samples: Path, names: list[str], drawn: dict[str, torch.Tensor | None]) -> None:
    """samples/labels.json: the class of every generated video (class-conditional models), by folder and index."""
    record = {"names": names} | {k: [names[i] if names else int(i) for i in v.tolist()] for k, v in drawn.items()
                                 if v is not None}  # fmt: skip
    (samples / SAMPLE_LABELS).write_text(json.dumps(record, indent=2))


def preview(frames: list[np.ndarray]) -> np.ndarray:
    """Up to PREVIEW videos side by side: (T, H, k*W, 3)."""
    return np.concatenate(frames[:PREVIEW], axis=2)


def generate(inputs: Path, outputs: Path, cfg: SampleConfig, device_name: str) -> dict[str, float | str]:
    """Sample with the models under `inputs` into the samples folder under `outputs`; returns what MLflow logs."""
    models, samples = inputs / MODELS.relative_to(ROOT), outputs / SAMPLES.relative_to(ROOT)
    device = resolve_device(device_name)
    model = VideoModel.load(models / "autoencoder.pt", models / "diffusion.pt", device, use_ema=cfg.use_ema)
    generator = make_generator(device, cfg.seed)
    labels = draw_labels(model, cfg.num_videos, cfg.seed)
    clips = write_all(
        sample_clips(model, cfg.num_videos, cfg, generator, labels), samples / "clips", "sample", cfg.fps
    )
    long_frames = cfg.long_clips * model.clip_frames
    long_labels = draw_labels(model, cfg.num_long_videos, cfg.seed + 1)
    longs = []  # sample.num_long_videos: 0 (and promotion's re-scoring, which reads the clips only)
    if cfg.num_long_videos:
        videos = sample_long_videos(model, cfg.num_long_videos, long_frames, cfg, generator, long_labels)
        longs = write_all(videos, samples / "long", "long", cfg.fps)
    write_labels(samples, model.diffusion.label_names, {"clips": labels, "long": long_labels})
    if clips:
        write_gif(samples / "preview.gif", preview(clips), cfg.fps)
    if longs:
        write_gif(samples / "long_preview.gif", preview(longs), cfg.fps)
    return {"num_videos": len(clips), "num_long_videos": len(longs), "long_frames": long_frames,
            "family": model.diffusion.config.denoiser.type}  # fmt: skip


def main(params: Params) -> None:
    cfg = params.sample
    with stage_run(
        "sample",
        {"sample": cfg.model_dump()},
        deps=["data/models/autoencoder.pt", "data/models/diffusion.pt"],
    ):
        models = [str((MODELS / name).relative_to(ROOT)) for name in ("autoencoder.pt", "diffusion.pt")]
        summary = run_heavy("sample", generate, cfg, params.runtime.device, runtime=params.runtime, root=ROOT,
                            inputs=models, outputs=[str(SAMPLES.relative_to(ROOT))])  # fmt: skip
        mlflow.set_tag("pvdm.family", summary.pop("family"))
        mlflow.log_artifacts(str(SAMPLES), artifact_path="samples")
        mlflow.log_metrics(summary)


if __name__ == "__main__":
    run_stage(main, expected=(ClusterError,))
