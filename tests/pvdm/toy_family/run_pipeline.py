"""Run the toy family (the `toy/` folder beside this file) through the library, config to FVD, in a fresh process.

    python tests/pvdm/toy_family/run_pipeline.py WORKDIR      (PYTHONPATH: the repository root)

The folder joins pvdm.families' package path before anything loads the families: the same as a folder placed at
pvdm/families/toy/, with no other file edited. Prints one JSON line of what the test checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

import pvdm.families

HERE = Path(__file__).resolve().parent
pvdm.families.__path__.append(str(HERE))  # the folder is now one of the families' sub-packages

from pipelines.compare_cli import default_presets  # noqa: E402
from pvdm.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from pvdm.config import ConfigError, EvaluateConfig, PreprocessConfig, SampleConfig, parse_params  # noqa: E402
from pvdm.data.clips import ClipDataset, ClipStore, from_model_tensor  # noqa: E402
from pvdm.data.latents import LatentPairDataset, cache_latents  # noqa: E402
from pvdm.data.preprocess import run_preprocess  # noqa: E402
from pvdm.data.synthetic import generate_videos  # noqa: E402
from pvdm.data.video import write_video  # noqa: E402
from pvdm.evaluation import evaluate_run  # noqa: E402
from pvdm.families.registry import families, load_autoencoder, load_diffusion  # noqa: E402
from pvdm.sampling import VideoModel, make_generator, sample_clips, sample_long_videos  # noqa: E402
from pvdm.training.autoencoder import train_autoencoder  # noqa: E402
from pvdm.training.diffusion import train_diffusion  # noqa: E402
from pvdm.training.loop import LocalContext  # noqa: E402


def main(work: Path) -> dict:
    out: dict = {"families": [f.name for f in families()], "compare_presets": default_presets()}
    params = parse_params(yaml.safe_load((HERE / "toy.yaml").read_text()))
    try:
        parse_params(
            {"autoencoder": {"model": {"type": "toy_ae"}}}
        )  # the triplane UNet cannot model its grids
    except ConfigError as err:
        out["pairing_error"] = str(err)
    generate_videos(work / "raw", 4, size=16, frames=24, fps=8, seed=2)
    run_preprocess(work / "raw", work / "clips", params.data, PreprocessConfig(test_fraction=0.25))
    history = train_autoencoder(params.autoencoder, params.data, params.runtime, ClipDataset(work / "clips"),
                                LocalContext(work / "ae"))  # fmt: skip
    out["ae_loss"] = [history.rows[0]["loss"], history.rows[-1]["loss"]]
    payload = load_checkpoint(latest_checkpoint(work / "ae"))
    ae = load_autoencoder(payload)
    out["ae_family"], out["ae_class"] = payload["family"], type(ae).__name__
    store = cache_latents(ae, work / "clips", work / "latents", autoencoder_sha256="0" * 64)
    out["latents_shape"] = list(store.latents.shape)
    out["spec_matches_config"] = store.spec == params.autoencoder.model.latent_spec(params.data)

    dataset = LatentPairDataset(work / "latents")
    train_diffusion(params.diffusion, params.runtime, dataset, store.spec, LocalContext(work / "diff"))
    diffusion = load_diffusion(load_checkpoint(latest_checkpoint(work / "diff")))
    out["denoiser_class"], out["x0_bound"] = type(diffusion.model).__name__, diffusion.x0_bound

    model = VideoModel(ae, diffusion, torch.device("cpu"))
    cfg = SampleConfig(steps=4, batch_size=3)
    clips = sample_clips(model, 3, cfg, make_generator(model.device, 0))
    long = sample_long_videos(model, 2, 20, cfg, make_generator(model.device, 1))  # 3 clips by Algorithm 1
    out["sample_shapes"] = [list(clips.shape), list(long.shape)]
    for folder, videos in (("clips", clips), ("long", long)):
        for i, video in enumerate(videos):
            write_video(work / "samples" / folder / f"{i}.mp4", from_model_tensor(video), 8)
    evaluate = EvaluateConfig(fvd_num_real=4, fvd_num_fake=3, fvd_frames=8, fvd_long_frames=16, fvd_long_num=2,
                              real_split="train", recon_num_clips=2, batch_size=4, cache_real_stats=False)  # fmt: skip
    metrics = evaluate_run(
        evaluate, ClipStore(work / "clips"), work / "samples", ae, torch.device("cpu"), "toy"
    )
    out["metrics_finite"] = bool(
        np.isfinite([metrics["fvd_16"], metrics["fvd_noise_latents"], metrics["recon_psnr"]]).all()
    )
    out["n_fake"], out["has_fvd_long"] = metrics["n_fake"], "fvd_long" in metrics
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
