"""Speed and memory of the triplane autoencoder and UNet, at the demo's sizes (params.yaml) and PVDM-L's (params/pvdm-l.yaml).

    uv run --frozen python -m bench.models [--config small|paper|both] [--device auto|cpu|cuda]
        [--precision auto|fp32|bf16] [--repeats N] [--warmup N] [--batch N] [--ddim-steps 100]
        [--measure-steps N] [--checkpointing auto|on|off] [--max-batch] [--json PATH]

For each config:
  AE, UNet  parameters; one training step divided by its batch: forward, loss, backward and AdamW (the AE's loss
            is L1 + LPIPS-VGG on one frame per clip, GAN phase off; the UNet's is PVDM's eps loss, then its EMA
            update), the median of --repeats steps after --warmup steps; the peak memory of those steps.
  sample    one 16-frame video: --ddim-steps DDIM steps of the UNet on one latent (unconditional, one UNet pass
            per step), then one AE decode; the median of --repeats videos after --warmup ones.

The paper config on CPU (2 cores: minutes per step) defaults to 1 timed step, no warm-up, 10 DDIM steps run and
the 100-step time extrapolated from the time per step (marked "*"), and activation checkpointing for the AE (its
fp32 activations passed 16 GB at batch 1). Flags override each default.

Every measurement runs in a fresh process, so peaks do not mix and an out-of-memory ends only that measurement; on
CPU a measurement is stopped when the host has less than --min-free-gb left. Peak memory: on CUDA
torch.cuda.max_memory_allocated (tensors: weights, gradients, optimizer state, activations); on CPU the process's
peak resident set (VmHWM, reset before the timed steps) minus its resident set before the models were built, so
it also counts the allocator's slack. Times: wall seconds, and on CPU also the process's CPU seconds (all threads),
which other processes' load barely changes.
--max-batch (CUDA only): the largest training batch that completes two steps, for the AE and the UNet, with and
without activation checkpointing (doubling, then bisection, each try in a fresh process).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from pvdm.config import load_params
from pvdm.config.autoencoder import AELossConfig, AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig, ProcessConfig
from pvdm.device import autocast, resolve_device
from pvdm.diffusion.samplers import ddim_sample, guided
from pvdm.diffusion.schedule import make_schedule
from pvdm.families.registry import families
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig
from pvdm.models.autoencoder import TriplaneAutoencoder
from pvdm.models.latent import LatentShape, triplane_spec
from pvdm.models.unet import TriplaneUNet
from pvdm.profiling import (
    GIB,
    Seconds,
    current_rss,
    in_fresh_process,
    measure,
    median,
    memory_method,
    release_free_heap,
    search_largest,
    timed,
)
from pvdm.training.autoencoder import build_autoencoder_state
from pvdm.training.autoencoder_step import autoencoder_train_step
from pvdm.training.diffusion import build_diffusion_state
from pvdm.training.diffusion_step import diffusion_train_step

Kind = Literal["ae", "unet", "sample"]
Result = dict[str, Any]


@dataclass(frozen=True)
class ModelSizes:
    """One benchmark configuration: clip geometry, both models, and the training batch per device type."""

    name: str
    resolution: int
    frames: int
    ae: TriplaneAEConfig
    unet: TriplaneUNetConfig
    batches: dict[str, tuple[int, int]]  # device type -> (AE batch, UNet batch)

    @property
    def latent(self) -> LatentShape:
        grid = self.resolution // self.ae.patch_size
        return LatentShape(self.ae.latent_channels, self.frames, grid, grid)


def from_preset(name: str, size: str, batches: dict[str, tuple[int, int]]) -> ModelSizes:
    """The PVDM family's sizes of one of its presets (pvdm.families.registry): the presets are the one size table
    that bench/, the tests and `make demo` read. Activation checkpointing is this benchmark's own switch."""
    (family,) = [f for f in families() if f.pair == ("triplane", "triplane_unet")]
    params = load_params(Path(__file__).resolve().parents[1] / family.presets[size])
    ae = params.autoencoder.model.model_copy(update={"activation_checkpointing": False})
    return ModelSizes(
        name, params.data.resolution, params.data.frames, ae, params.diffusion.denoiser, batches
    )


# The model sizes `make demo` trains (params.yaml), at its batch sizes.
SMALL = from_preset("small", "demo", batches={"cpu": (4, 16), "cuda": (4, 16)})
# PVDM-L (params/pvdm-l.yaml), the official sizes: 256x256x16, patch 8, latent planes 32x32 + 16x32 + 16x32.
# Batches: what 2 CPU cores finish in about a minute; on a GPU enough to keep it busy.
PAPER = from_preset("paper", "paper-l", batches={"cpu": (1, 2), "cuda": (4, 16)})
CONFIGS = {"small": SMALL, "paper": PAPER}


@dataclass(frozen=True)
class Job:
    """One measurement, picklable so it can run in its own process."""

    kind: Kind
    sizes: ModelSizes
    device: str
    precision: str
    batch: int = 1
    checkpointing: bool = False
    repeats: int = 3
    warmup: int = 1
    ddim_steps: int = 100  # sample: the steps the reported time is for
    measured_steps: int = 100  # sample: the steps actually run (fewer: the time is extrapolated)
    lpips: bool = True
    sdpa: str = "auto"


# ---------------------------------------------------------------- the measurements


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def no_perceptual(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.new_zeros(())


def ae_training(job: Job, device: torch.device, baseline: int) -> Result:
    sizes = job.sizes
    model = sizes.ae.model_copy(update={"activation_checkpointing": job.checkpointing})
    cfg = AutoencoderConfig(model=model, loss=AELossConfig(lpips_weight=1.0 if job.lpips else 0.0))
    perceptual = no_perceptual
    if job.lpips:
        from pvdm.metrics.lpips import load_lpips  # torchvision: seconds to import, so only where it is used

        perceptual = load_lpips("vgg").to(device)
    data = DataConfig(resolution=sizes.resolution, frames=sizes.frames)
    state = build_autoencoder_state(cfg, data, perceptual, device)
    generator = torch.Generator().manual_seed(0)
    shape = (job.batch, 3, sizes.frames, sizes.resolution, sizes.resolution)
    x = (torch.rand(shape, generator=generator) * 2 - 1).to(device)  # content does not change the cost

    def step() -> None:
        autoencoder_train_step(
            state, x, cfg.loss, 0, grad_clip=cfg.train.grad_clip, precision=job.precision, generator=generator
        )

    seconds, peak = measure(step, device, job.warmup, job.repeats, baseline)
    return train_result(job, count_params(state.model), seconds, peak)


def unet_training(job: Job, device: torch.device, baseline: int) -> Result:
    unet = job.sizes.unet.model_copy(update={"activation_checkpointing": job.checkpointing})
    cfg = DiffusionConfig(denoiser=unet)
    latent = job.sizes.latent
    state = build_diffusion_state(cfg, triplane_spec(latent), device)
    generator = torch.Generator().manual_seed(0)
    z, z_prev = (torch.rand((job.batch, *latent.packed_shape), generator=generator) * 2 - 1 for _ in range(2))

    def step() -> None:
        diffusion_train_step(
            state.model,
            state.ema,
            state.optimizer,
            z,
            z_prev,
            state.schedule,
            cfg.train,
            device=device,
            precision=job.precision,
            generator=generator,
        )

    seconds, peak = measure(step, device, job.warmup, job.repeats, baseline)
    return train_result(job, count_params(state.model), seconds, peak)


def train_result(job: Job, params: int, seconds: list[Seconds], peak: int) -> Result:
    per_clip = median(seconds, job.batch)
    return {
        "params": params,
        "step_s": [v.wall for v in seconds],
        "step_cpu_s": [v.cpu for v in seconds],
        "per_clip_s": per_clip.wall,
        "per_clip_cpu_s": per_clip.cpu,
        "peak_bytes": peak,
    }


@torch.no_grad()
def sampling(job: Job, device: torch.device, baseline: int) -> Result:
    """One video: `measured_steps` DDIM steps, then the AE decode; the time for `ddim_steps` is scaled per step."""
    sizes, latent = job.sizes, job.sizes.latent
    unet = TriplaneUNet(sizes.unet, latent).to(device).eval()
    ae = TriplaneAutoencoder(sizes.ae, sizes.frames, sizes.resolution).to(device).eval()
    schedule = make_schedule(ProcessConfig())
    model_fn = guided(unet, None)  # a video's first clip: the null condition, one UNet pass per step
    shape = (1, *latent.packed_shape)
    chains: list[Seconds] = []
    decodes: list[Seconds] = []

    def one_video() -> None:
        generator = torch.Generator(device).manual_seed(0)  # the chain runs on the generator's device
        z = None

        def chain() -> None:
            nonlocal z
            z = ddim_sample(
                model_fn, shape, schedule, steps=job.measured_steps, generator=generator, x0_bound=1.0
            )

        chains.append(timed(chain, device))
        decodes.append(timed(lambda: ae.decode(z), device))

    with autocast(device, job.precision):
        _, peak = measure(one_video, device, job.warmup, job.repeats, baseline)
    per_step = median(chains[job.warmup :], job.measured_steps)
    decode = median(decodes[job.warmup :])
    return {
        "params": count_params(unet) + count_params(ae),
        "per_step_s": per_step.wall,
        "per_step_cpu_s": per_step.cpu,
        "decode_s": decode.wall,
        "decode_cpu_s": decode.cpu,
        "video_s": per_step.wall * job.ddim_steps + decode.wall,
        "video_cpu_s": per_step.cpu * job.ddim_steps + decode.cpu,
        "extrapolated": job.measured_steps != job.ddim_steps,
        "peak_bytes": peak,
    }


MEASUREMENTS: dict[str, Callable[[Job, torch.device, int], Result]] = {
    "ae": ae_training,
    "unet": unet_training,
    "sample": sampling,
}


def sdpa_backend(name: str):
    """Force one scaled-dot-product-attention kernel (for comparisons); 'auto' lets PyTorch choose."""
    if name == "auto":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend[name.upper()]])


def describe(job: Job) -> Result:
    fields = asdict(job)
    fields["config"] = job.sizes.name
    del fields["sizes"]
    return fields


def is_out_of_memory(err: RuntimeError) -> bool:
    message = str(err)
    markers = ("can't allocate memory", "CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED")
    return isinstance(err, torch.OutOfMemoryError) or any(m in message for m in markers)


def run_job(job: Job) -> Result:
    """Run one measurement in this process; an out-of-memory becomes a result, not an exception."""
    device = torch.device(job.device)
    if job.kind == "ae" and job.lpips:
        importlib.import_module("pvdm.metrics.lpips")  # its libraries belong in the baseline, not the peak
    release_free_heap()  # the baseline, like the peak, counts memory in use, not glibc's cache of freed blocks
    baseline = current_rss() if device.type == "cpu" else 0
    try:
        with sdpa_backend(job.sdpa):
            result = MEASUREMENTS[job.kind](job, device, baseline)
    except RuntimeError as err:
        if not is_out_of_memory(err):
            raise
        result = {"error": "out of memory", "oom": True}
    return describe(job) | result


def run_isolated(job: Job, min_free_gb: float = 2.0) -> Result:
    """run_job in a fresh process, so its peak memory is its own; on CPU it is watched for host memory."""
    watch = min_free_gb if job.device == "cpu" else None
    return describe(job) | in_fresh_process(run_job, job, min_free_gb=watch)


# ---------------------------------------------------------------- planning and the largest batch


def plan_jobs(sizes: ModelSizes, args: argparse.Namespace, device: torch.device) -> list[Job]:
    """The three jobs of one config. Unset flags default to 3 timed steps after 1 warm-up, except the paper config
    on CPU: 1 step, no warm-up (minutes a step; the first costs no more than the next on CPU), 10 DDIM steps."""
    slow = sizes.name == "paper" and device.type == "cpu"
    ae_batch, unet_batch = sizes.batches[device.type]
    common = Job(
        kind="ae",
        sizes=sizes,
        device=str(device),
        precision=args.precision,
        checkpointing=args.checkpointing == "on",
        repeats=args.repeats or (1 if slow else 3),
        warmup=args.warmup if args.warmup is not None else (0 if slow else 1),
        ddim_steps=args.ddim_steps,
        measured_steps=args.measure_steps or (min(10, args.ddim_steps) if slow else args.ddim_steps),
        lpips=not args.no_lpips,
        sdpa=args.sdpa,
    )
    # auto: the paper AE on CPU is checkpointed: its fp32 activations passed 16 GB at batch 1, more than a
    # shared 23 GB machine can spare. Everything else runs as configured.
    ae_checkpointing = args.checkpointing == "on" or (args.checkpointing == "auto" and slow)
    return [
        replace(common, batch=args.batch or ae_batch, checkpointing=ae_checkpointing),
        replace(common, kind="unet", batch=args.batch or unet_batch),
        replace(common, kind="sample", batch=1),
    ]


def largest_batch(job: Job, limit: int, run: Callable[[Job], Result] = run_isolated) -> Result:
    """The largest batch <= limit whose two training steps fit in memory. Any other failure ends the search: it is
    reported, not counted as a fit."""
    fitted: dict[int, Result] = {}

    def fits(batch: int) -> bool:
        result = run(replace(job, batch=batch, warmup=1, repeats=1))
        if "error" in result and not result.get("oom"):
            raise RuntimeError(f"batch {batch}: {result['error']}")
        if not result.get("oom"):
            fitted[batch] = result
        return not result.get("oom")

    found = {"kind": job.kind, "checkpointing": job.checkpointing}
    try:
        batch, at_limit = search_largest(fits, limit)
    except RuntimeError as err:
        return found | {"max_batch": max(fitted, default=0), "at_limit": False, "error": str(err)}
    best = {key: fitted[batch][key] for key in ("per_clip_s", "peak_bytes")} if batch else {}
    return found | {"max_batch": batch, "at_limit": at_limit} | best


# ---------------------------------------------------------------- the report


def seconds_text(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def row(result: Result) -> list[str]:
    """config, part, params, batch, ckpt, peak memory, wall, CPU-s, what the time is of."""
    peak = f"{result['peak_bytes'] / GIB:.2f} GiB" if "peak_bytes" in result else "-"
    params = f"{result['params'] / 1e6:.1f} M" if "params" in result else "-"
    part = {"ae": "AE train", "unet": "UNet train", "sample": "sample"}[result["kind"]]
    head = [
        result["config"],
        part,
        params,
        str(result["batch"]),
        "on" if result["checkpointing"] else "off",
        peak,
    ]
    on_cpu = result["device"] == "cpu"
    if "error" in result:
        return [*head, "-", "-", result["error"]]
    if result["kind"] == "sample":
        star = "*" if result["extrapolated"] else ""
        what = (
            f"per video: {result['ddim_steps']} DDIM steps x {seconds_text(result['per_step_s'])} + decode "
            f"{seconds_text(result['decode_s'])}"
            + (f" ({result['measured_steps']} steps run)" if star else "")
        )
        cpu = seconds_text(result["video_cpu_s"]) + star if on_cpu else "-"
        return [*head, seconds_text(result["video_s"]) + star, cpu, what]
    what = f"per clip: train step, median of {len(result['step_s'])}"
    cpu = seconds_text(result["per_clip_cpu_s"]) if on_cpu else "-"
    return [*head, seconds_text(result["per_clip_s"]), cpu, what]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: list[Result], meta: Result) -> str:
    header = ["config", "part", "params", "batch", "ckpt", "peak memory", "wall", "CPU-s", "time of"]
    lines = [
        f"device: {meta['device_name']} ({meta['device']}, {meta['threads']} threads), precision {meta['precision']}, "
        f"torch {meta['torch']}, OMP_WAIT_POLICY {meta['omp_wait_policy']}, load average {meta['load_average']:.1f}",
        f"peak memory: {meta['memory']}",
        "wall: elapsed seconds; CPU-s: this process's CPU seconds over all its threads (what the work costs, nearly"
        " independent of other processes' load; on N idle cores wall is about CPU-s / N)",
        "",
        table([row(r) for r in results], header),
    ]
    if any(r.get("extrapolated") for r in results):
        lines.append(
            "* extrapolated: the DDIM loop ran fewer steps (see measured_steps); time per step x steps"
        )
    return "\n".join(lines)


def max_batch_report(found: list[Result]) -> str:
    rows = []
    for f in found:
        peak = "-"
        if "peak_bytes" in f:
            peak = f"{f['peak_bytes'] / GIB:.1f} GiB ({f['peak_bytes'] / GIB / f['max_batch']:.1f} GiB/clip)"
        batch = (">=" if f["at_limit"] else "") + str(f["max_batch"])
        time_text = seconds_text(f["per_clip_s"]) if "per_clip_s" in f else "-"
        ckpt = "on" if f["checkpointing"] else "off"
        rows.append([f["config"], f["kind"], ckpt, batch, peak, time_text, f.get("error", "")])
    return table(rows, ["config", "model", "ckpt", "max batch", "peak at max", "wall /clip at max", "error"])


def environment(device: torch.device, precision: str) -> Result:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    if device.type == "cpu":
        name = cpu_model() or name
    return {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "torch": torch.__version__,
        "load_average": os.getloadavg()[0],
        "memory": memory_method(device),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- command line


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=["small", "paper", "both"], default="both")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 on CUDA, fp32 on CPU",
    )
    p.add_argument(
        "--repeats",
        type=positive,
        default=None,
        help="timed steps (default 3; 1 for the paper config on CPU)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first (default 1; 0 for the paper config on CPU)",
    )
    p.add_argument(
        "--batch",
        type=positive,
        default=None,
        help="training batch for both models (default: per config and device)",
    )
    p.add_argument(
        "--ddim-steps", type=positive, default=100, help="DDIM steps of the reported sampling time"
    )
    p.add_argument(
        "--measure-steps",
        type=positive,
        default=None,
        help="DDIM steps actually run (default --ddim-steps; 10 for the paper config on CPU)",
    )
    p.add_argument(
        "--checkpointing",
        choices=["auto", "on", "off"],
        default="auto",
        help="activation checkpointing in the timed runs (auto: on only for the paper AE on CPU)",
    )
    p.add_argument(
        "--min-free-gb",
        type=float,
        default=2.0,
        help="CPU: stop a measurement when the host has less than this many GiB free",
    )
    p.add_argument(
        "--sdpa",
        choices=["auto", "flash_attention", "efficient_attention", "math", "cudnn_attention"],
        default="auto",
        help="force one attention kernel",
    )
    p.add_argument("--no-lpips", action="store_true", help="AE loss without LPIPS (L1 only)")
    p.add_argument(
        "--max-batch", action="store_true", help="CUDA only: search the largest training batch that fits"
    )
    p.add_argument("--max-batch-limit", type=positive, default=256, help="largest batch the search tries")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.max_batch and device.type != "cuda":
        raise SystemExit("--max-batch needs a CUDA device: host memory has no hard per-process limit to find")
    args.precision = (
        args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    )
    names = ["small", "paper"] if args.config == "both" else [args.config]
    if device.type == "cpu":
        # On a shared machine OpenMP threads that spin while waiting lose their time slices to other processes:
        # a small UNet step took 10-30x longer at load 10 on 2 cores. Passive waiting costs little when idle.
        # The measuring processes inherit it (it is read when torch loads OpenMP, so not by this process).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = []
    for name in names:
        for job in plan_jobs(CONFIGS[name], args, device):
            print(f"measuring {name} {job.kind} (batch {job.batch}) ...", flush=True)
            results.append(run_isolated(job, args.min_free_gb))
    meta = environment(device, args.precision)
    print("\n" + report(results, meta))
    found = []
    if args.max_batch:
        for name in names:
            for job in plan_jobs(CONFIGS[name], args, device)[:2]:
                for checkpointing in (False, True):
                    print(
                        f"searching the largest {name} {job.kind} batch (checkpointing {checkpointing}) ...",
                        flush=True,
                    )
                    found.append(
                        {"config": name}
                        | largest_batch(replace(job, checkpointing=checkpointing), args.max_batch_limit)
                    )
        print("\n" + max_batch_report(found))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, "max_batch": found}, indent=2))


if __name__ == "__main__":
    main()
