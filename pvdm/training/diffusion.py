"""The diffusion model's training state (build, checkpoint, restore) and its per-worker training loop."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from pvdm.checkpoint import capture_rng_state, restore_rng_state
from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.schedule import NoiseSchedule, make_schedule
from pvdm.families.registry import build_denoiser, denoiser_record
from pvdm.families.roles import LatentSpec
from pvdm.training.data import LatentBatch, collate_latent_pairs, training_batches
from pvdm.training.diffusion_step import TrainingObjective, diffusion_train_step
from pvdm.training.loop import History, Metrics, TrainContext, per_rank_batch_size, run_steps, seed_everything
from pvdm.training.schedule import learning_rate, set_learning_rate, step_generator
from pvdm.training.warm_start import InitialWeights, WarmStartError, load_into


@dataclass
class DiffusionTrainState:
    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    schedule: NoiseSchedule


def build_diffusion_state(
    cfg: DiffusionConfig, spec: LatentSpec, device: torch.device
) -> DiffusionTrainState:
    model = build_denoiser(cfg, spec).to(device)
    t = cfg.train
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
    )
    ema = EMA(model, decay=t.ema_decay, warmup=t.ema_warmup)
    return DiffusionTrainState(model, ema, optimizer, make_schedule(cfg.process))


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def diffusion_checkpoint(
    state: DiffusionTrainState,
    step: int,
    cfg: DiffusionConfig,
    spec: LatentSpec,
    label_names: list[str] | None = None,
) -> dict[str, Any]:
    return denoiser_record(cfg, spec, label_names) | {
        "step": step,
        "model": _unwrap(state.model).state_dict(),
        "ema": state.ema.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": capture_rng_state(),
    }


def restore_diffusion_state(state: DiffusionTrainState, payload: dict[str, Any]) -> int:
    _unwrap(state.model).load_state_dict(payload["model"])
    state.ema.load_state_dict(payload["ema"])
    state.optimizer.load_state_dict(payload["optimizer"])
    restore_rng_state(payload["rng"])
    return int(payload["step"])


def train_diffusion(
    cfg: DiffusionConfig,
    runtime: RuntimeConfig,
    dataset: Dataset,
    spec: LatentSpec,
    ctx: TrainContext,
    root: Path | None = None,
    init: InitialWeights | None = None,
) -> History:
    """The per-worker loop of `train_diffusion`. dataset items: (z, z_prev, has_prev, label) as in
    LatentPairDataset; `spec` is the latent store's LatentSpec (it is recorded in every checkpoint); `root`: the
    project folder that relative paths in the config start from (default: the working directory).

    init: the weights to start from (`train.init_from`) when there is no checkpoint of this run to resume: model
    and EMA (a fresh optimizer, step 0); every checkpoint records where they came from."""
    seed_everything(runtime.seed)
    state = build_diffusion_state(cfg, spec, ctx.device)
    names = check_classes(state.model.num_classes, list(getattr(dataset, "label_names", [])))
    history, start = History(), 0
    payload = ctx.resume_payload()
    if payload is not None:
        start = restore_diffusion_state(state, payload)
        history.rows = list(payload.get("history", []))
    elif init is not None:
        warm_start(state, init)
    else:
        state.model.prepare_training(root or Path.cwd())
    lineage = {"init": init.source.to_dict()} if init is not None else {}
    bare = state.model
    t = cfg.train
    # DDP wraps the whole objective: a family's loss may run several networks (pvdm.training.diffusion_step)
    state.model = ctx.prepare_model(TrainingObjective(bare, state.schedule, t))
    per_rank = per_rank_batch_size(t.batch_size, ctx.world_size)

    def step_fn(step: int) -> Metrics:
        b: LatentBatch = batches.take(step)  # this rank's share of the schedule's batch of `step`
        label = b.label if bare.num_classes else None  # unconditional models never see labels
        set_learning_rate(state.optimizer, learning_rate(t, step))
        return diffusion_train_step(
            state.model, state.ema, state.optimizer, b.z, b.z_prev, state.schedule, t,
            device=ctx.device, precision=runtime.precision, generator=step_generator(runtime.seed, step, ctx.rank),
            has_prev=b.has_prev, label=label, update_ema=(step + 1) % t.ema_every == 0,
        )  # fmt: skip

    def checkpoint_fn(step: int, hist: History) -> dict[str, Any]:
        return (
            diffusion_checkpoint(
                DiffusionTrainState(bare, state.ema, state.optimizer, state.schedule), step, cfg, spec, names
            )
            | {"history": hist.rows}
            | lineage
        )

    with training_batches(
        dataset, collate_latent_pairs, t, ctx, per_rank=per_rank, seed=runtime.seed, start=start
    ) as batches:
        return run_steps(
            ctx, start, t.steps, step_fn, checkpoint_fn,
            checkpoint_every=t.checkpoint_every, log_every=t.log_every, history=history, desc="train_diffusion",
        )  # fmt: skip


def warm_start(state: DiffusionTrainState, init: InitialWeights) -> None:
    """The model's and the EMA's weights from `init`; the EMA's update count starts again (its warm-up, if on,
    lets the average follow the fine-tuned weights)."""
    load_into(state.model, init.model, init.source)
    if init.ema is None:  # a checkpoint without EMA: the average starts at the loaded weights
        state.ema = EMA(state.model, decay=state.ema.decay, warmup=state.ema.warmup)
        return
    try:
        state.ema.load_state_dict(
            init.ema | {"decay": state.ema.decay, "warmup": state.ema.warmup, "num_updates": 0}
        )
    except KeyError as err:
        raise WarmStartError(f"train.init_from ({init.source.label}): {err.args[0]}") from None


def check_classes(num_classes: int, names: list[str]) -> list[str]:
    """The label names a denoiser trains on: all of the data's for a class-conditional one, none otherwise."""
    if num_classes and num_classes != len(names):
        found = (
            f"{len(names)} classes ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
            if names
            else "no labels"
        )
        raise ValueError(
            f"diffusion.denoiser.num_classes is {num_classes} but the data has {found}: set it to {len(names)} "
            "(and preprocess.labels to read the classes)"
        )
    return names if num_classes else []


def ema_copy(model: torch.nn.Module, ema: EMA) -> torch.nn.Module:
    """A separate module holding the EMA weights (training weights untouched)."""
    return ema.copy_to(copy.deepcopy(_unwrap(model))).eval()
