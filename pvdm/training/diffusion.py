"""The diffusion model's training state (build, checkpoint, restore) and its per-worker training loop."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.diffusion.schedule import NoiseSchedule, make_schedule
from pvdm.models.latent import LatentShape
from pvdm.models.unet import TriplaneUNet
from pvdm.training.checkpoint import capture_rng_state, restore_rng_state
from pvdm.training.diffusion_step import diffusion_train_step
from pvdm.training.ema import EMA
from pvdm.training.loop import History, Metrics, TrainContext, per_rank_batch_size, run_steps, seed_everything
from pvdm.training.schedule import global_batch_indices, rank_slice, step_generator


@dataclass
class DiffusionTrainState:
    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    schedule: NoiseSchedule


def build_diffusion_state(
    cfg: DiffusionConfig, latent: LatentShape, device: torch.device
) -> DiffusionTrainState:
    model = TriplaneUNet(cfg.unet, latent).to(device)
    t = cfg.train
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
    )
    ema = EMA(model, decay=t.ema_decay, warmup=t.ema_warmup)
    return DiffusionTrainState(model, ema, optimizer, make_schedule(cfg.process))


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def diffusion_checkpoint(
    state: DiffusionTrainState, step: int, cfg: DiffusionConfig, latent: LatentShape
) -> dict[str, Any]:
    return {
        "kind": "diffusion",
        "step": step,
        "config": {"diffusion": cfg.model_dump(mode="json"), "latent_shape": latent.__dict__.copy()},
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


@dataclass
class TrainedDiffusion:
    """What sampling needs, rebuilt from a checkpoint alone."""

    model: TriplaneUNet
    schedule: NoiseSchedule
    config: DiffusionConfig
    latent_shape: LatentShape


def diffusion_from_checkpoint(payload: dict[str, Any], use_ema: bool = True) -> TrainedDiffusion:
    cfg = DiffusionConfig.model_validate(payload["config"]["diffusion"])
    latent = LatentShape(**payload["config"]["latent_shape"])
    model = TriplaneUNet(cfg.unet, latent)
    model.load_state_dict(payload["model"])
    if use_ema:
        ema = EMA(model, decay=cfg.train.ema_decay)
        ema.load_state_dict(payload["ema"])
        ema.copy_to(model)
    return TrainedDiffusion(model.eval(), make_schedule(cfg.process), cfg, latent)


def load_pairs(dataset: Dataset, indices: list[int], device: torch.device):
    items = [dataset[i] for i in indices]
    z = torch.stack([it[0] for it in items]).to(device)
    z_prev = torch.stack([it[1] for it in items]).to(device)
    has_prev = torch.tensor([bool(it[2]) for it in items], device=device)
    return z, z_prev, has_prev


def train_diffusion(
    cfg: DiffusionConfig,
    runtime: RuntimeConfig,
    dataset: Dataset,
    latent: LatentShape,
    ctx: TrainContext,
) -> History:
    """The per-worker loop of `train_diffusion`. dataset items: (z, z_prev, has_prev) as in LatentPairDataset."""
    seed_everything(runtime.seed)
    state = build_diffusion_state(cfg, latent, ctx.device)
    history, start = History(), 0
    payload = ctx.resume_payload()
    if payload is not None:
        start = restore_diffusion_state(state, payload)
        history.rows = list(payload.get("history", []))
    bare = state.model
    state.model = ctx.prepare_model(state.model)
    t = cfg.train
    per_rank = per_rank_batch_size(t.batch_size, ctx.world_size)

    def step_fn(step: int) -> Metrics:
        batch = global_batch_indices(len(dataset), per_rank * ctx.world_size, step, runtime.seed)
        z, z_prev, has_prev = load_pairs(dataset, rank_slice(batch, ctx.rank, ctx.world_size), ctx.device)
        generator = step_generator(runtime.seed, step, ctx.rank)
        metrics = diffusion_train_step(
            state.model, state.ema, state.optimizer, z, z_prev, state.schedule, t,
            device=ctx.device, precision=runtime.precision, generator=generator, has_prev=has_prev,
        )  # fmt: skip
        return metrics

    def checkpoint_fn(step: int, hist: History) -> dict[str, Any]:
        return diffusion_checkpoint(
            DiffusionTrainState(bare, state.ema, state.optimizer, state.schedule), step, cfg, latent
        ) | {"history": hist.rows}

    return run_steps(
        ctx, start, t.steps, step_fn, checkpoint_fn,
        checkpoint_every=t.checkpoint_every, log_every=t.log_every, history=history, desc="train_diffusion",
    )  # fmt: skip


def ema_copy(model: torch.nn.Module, ema: EMA) -> torch.nn.Module:
    """A separate module holding the EMA weights (training weights untouched)."""
    return ema.copy_to(copy.deepcopy(_unwrap(model))).eval()
