"""Model families side by side under one protocol: the PVDM paper's Table 5, regenerated (`pvdm compare`).

Every family is trained and measured on the same clips, resolution, frame count, sampler, step count and FVD
protocol: `aligned` copies those from the first family's params. `run_family` trains a family through the same
library loops the DVC stages use (in `workdir`, so a rerun with unchanged inputs reuses the trained models),
then measures:

    parameters          of the autoencoder and the denoiser
    train s/step        wall seconds per optimizer step of each training loop (autoencoder, diffusion)
    train memory        GPU: the largest diffusion training batch that fits (searched, one process per try);
                        CPU: peak-RSS growth per clip of a diffusion training step (batch 5 against batch 1)
    sample s/video      wall seconds per generated clip (the sampler's steps plus decoding), and its peak memory
                        (CUDA max allocated on GPU, peak RSS above the baseline on CPU)
    fvd_16              of the sampled clips as the sampler produced them (uint8, no video codec in between)
                        against the same real clips

No tracking here: pipelines/compare.py logs the results to MLflow and writes the table.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config import Params
from pvdm.config.sample import SampleConfig
from pvdm.data.clips import ClipDataset, ClipStore, from_model_tensor
from pvdm.data.latents import LatentPairDataset, cache_latents
from pvdm.device import resolve_device
from pvdm.evaluation import real_set, real_split_indices, sized
from pvdm.families.registry import build_autoencoder, load_autoencoder, load_diffusion
from pvdm.families.registry import family_name as registered_family_name
from pvdm.families.roles import LatentSpec
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.fvd import compute_fvd, fvd_16
from pvdm.profiling import current_rss, in_fresh_process, peak_memory, reset_peak, search_largest, timed
from pvdm.sampling import VideoModel, make_generator, sample_clips
from pvdm.training.autoencoder import train_autoencoder
from pvdm.training.diffusion import train_diffusion
from pvdm.training.loop import LocalContext

MB = 1024**2


def family_name(params: Params) -> str:
    """The registered name of the params' family (pvdm.families.registry), else its two types."""
    return registered_family_name(params.autoencoder.model.type, params.diffusion.denoiser.type)


def aligned(params: Params, base: Params) -> Params:
    """`params` with what the comparison holds equal taken from `base`: the clips (data), the runtime, the
    sampler and its step count and eta, and the evaluation protocol. Validated again (geometry rules)."""
    data = params.model_dump(mode="json")
    ref = base.model_dump(mode="json")
    data |= {key: ref[key] for key in ("data", "runtime", "evaluate")}
    data["sample"] |= {key: ref["sample"][key] for key in ("sampler", "steps", "eta", "seed")}
    return Params.model_validate(data)


def workdir_key(params: Params, clips: Path) -> str:
    """What a family's trained models depend on: its model and training sections, the clips, the seed."""
    section = {
        "autoencoder": params.autoencoder.model_dump(mode="json"),
        "diffusion": params.diffusion.model_dump(mode="json"),
        "data": params.data.model_dump(mode="json"),
        "seed": params.runtime.seed,
    }
    h = hashlib.sha256(json.dumps(section, sort_keys=True).encode())
    h.update((clips / "manifest.parquet").read_bytes())
    return h.hexdigest()[:12]


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _trained(folder: Path, train: Any, steps: int, device: torch.device) -> tuple[dict[str, Any], float]:
    """Run (or resume, or skip when complete) a training loop checkpointing into `folder`; returns the final
    payload and the wall seconds per step, kept in `folder/timing.json` for reruns that train nothing."""
    timing = folder / "timing.json"
    before = latest_checkpoint(folder)
    start = int(load_checkpoint(before)["step"]) if before else 0
    if start < steps:
        began = time.perf_counter()
        train(LocalContext(folder, device=device))
        timing.write_text(json.dumps({"step_s": (time.perf_counter() - began) / (steps - start)}))
    payload = load_checkpoint(latest_checkpoint(folder))
    return payload, json.loads(timing.read_text())["step_s"]


def train_family(
    params: Params, clips: Path, workdir: Path, device: torch.device
) -> tuple[VideoModel, dict[str, float]]:
    """The family's autoencoder, latent store and diffusion model, trained in `workdir` (reused when there)."""
    metrics: dict[str, float] = {}
    ae = build_autoencoder(params.autoencoder, params.data)
    if ae.trainable:
        data = ClipDataset(clips, "train")
        payload, metrics["autoencoder_step_s"] = _trained(
            workdir / "autoencoder",
            partial(train_autoencoder, params.autoencoder, params.data, params.runtime, data),
            params.autoencoder.train.steps,
            device,
        )
        ae = load_autoencoder(payload)
    ae = ae.to(device)
    metrics["autoencoder_params"] = count_params(ae)
    store = cache_latents(
        ae, clips, workdir / "latents", autoencoder_sha256="compare", device=device, progress=False,
        jitter_windows=params.diffusion.train.jitter_windows,
    )  # fmt: skip
    dataset = LatentPairDataset(workdir / "latents", "train")
    payload, metrics["diffusion_step_s"] = _trained(
        workdir / "diffusion",
        partial(train_diffusion, params.diffusion, params.runtime, dataset, store.spec),
        params.diffusion.train.steps,
        device,
    )
    diffusion = load_diffusion(payload, use_ema=params.sample.use_ema)
    diffusion.model.to(device)
    metrics["denoiser_params"] = count_params(diffusion.model)
    return VideoModel(ae, diffusion, device), metrics


def _train_step_peak(args: tuple[Params, LatentSpec, int, str]) -> dict[str, Any]:
    """One process: peak memory of a diffusion training step at `batch` (after one warm-up step)."""
    from pvdm.training.diffusion import build_diffusion_state
    from pvdm.training.diffusion_step import diffusion_train_step

    params, spec, batch, device_name = args
    device = torch.device(device_name)
    reset_peak(device)
    baseline = current_rss() if device.type == "cpu" else 0
    state = build_diffusion_state(params.diffusion, spec, device)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(batch, *spec.shape, generator=generator)

    def step() -> None:
        diffusion_train_step(state.model, state.ema, state.optimizer, z, z, state.schedule, params.diffusion.train,
                             device=device, precision=params.runtime.precision, generator=generator)  # fmt: skip

    try:
        step()
        reset_peak(device)
        step()
    except torch.cuda.OutOfMemoryError:
        return {"oom": True}
    return {"peak_bytes": peak_memory(device, baseline)}


SMALL, LARGE = 1, 5  # CPU: the per-clip memory is the peak difference between these batches, over their gap


def training_memory(
    params: Params, spec: LatentSpec, device: torch.device, limit: int = 256
) -> dict[str, float]:
    """GPU: the largest diffusion training batch that fits; CPU: peak-RSS growth per clip between a batch of 1
    and one of 5 (a gap of 4 clips, so the allocator's noise is small against it)."""
    run = lambda batch: in_fresh_process(_train_step_peak, (params, spec, batch, device.type))  # noqa: E731
    if device.type == "cuda":
        largest, at_limit = search_largest(lambda b: not run(b).get("oom"), limit)
        return {"max_train_batch": float(largest), "max_train_batch_at_limit": float(at_limit)}
    small, large = run(SMALL), run(LARGE)
    for result in (small, large):
        if "error" in result:
            raise RuntimeError(f"measuring training memory failed: {result['error']}")
    return {"train_mb_per_sample": (large["peak_bytes"] - small["peak_bytes"]) / (LARGE - SMALL) / MB}


def sampling_cost(model: VideoModel, n: int, cfg: SampleConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """n clips from the model, with the wall seconds per clip and the peak memory of the sampling."""
    device, out = model.device, {}
    reset_peak(device)  # first: it may hand freed heap back to the OS, lowering the RSS
    baseline = current_rss() if device.type == "cpu" else 0

    def draw() -> None:
        out["clips"] = sample_clips(model, n, cfg, make_generator(device, cfg.seed))

    seconds = timed(draw, device)
    return out["clips"], {
        "sample_s_per_video": seconds.wall / n,
        "sample_peak_mb": peak_memory(device, baseline) / MB,
    }


def run_family(
    params: Params, clips: Path, workdir: Path, extractor: I3DFeatureExtractor, data_key: str
) -> dict[str, float]:
    """Train (or reuse) one family and measure it; every value is a float, ready for a table or MLflow."""
    workdir.mkdir(parents=True, exist_ok=True)
    model, metrics = train_family(params, clips, workdir, resolve_device(params.runtime.device))
    metrics |= training_memory(params, model.diffusion.latent_spec, model.device)
    n = params.evaluate.fvd_num_fake
    videos, cost = sampling_cost(model, n, params.sample)
    metrics |= cost
    cfg = params.evaluate
    store = ClipStore(clips)
    split, _ = real_split_indices(store, cfg.real_split)
    reals = real_set(
        store, split, workdir / "no-labels", cfg.window_seed
    )  # every family: the same real windows
    protocol = sized(fvd_16(cfg.fvd_num_real, n, split), reals.available(16, cfg.fvd_num_real), n)
    fakes = (from_model_tensor(v) for v in videos)  # the sampler's frames, quantised like the real side
    result = compute_fvd(reals.windows(16, protocol.n_real), fakes, protocol, extractor, reals.key(data_key))
    return metrics | {"fvd_16": result.fvd, "n_real": float(result.n_real), "n_fake": float(result.n_fake)}
