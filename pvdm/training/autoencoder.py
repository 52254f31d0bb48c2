"""The autoencoder's training state (build, checkpoint, restore) and its per-worker training loop."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from pvdm.checkpoint import capture_rng_state, restore_rng_state
from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.families.registry import autoencoder_record, build_autoencoder
from pvdm.metrics.lpips import load_lpips
from pvdm.models.discriminator import VideoDiscriminator
from pvdm.training.autoencoder_loss import PerceptualFn
from pvdm.training.autoencoder_step import AutoencoderTrainState, autoencoder_train_step
from pvdm.training.data import collate_clips, training_batches
from pvdm.training.loop import History, Metrics, TrainContext, per_rank_batch_size, run_steps, seed_everything
from pvdm.training.schedule import learning_rate, set_learning_rate, step_generator
from pvdm.training.warm_start import InitialWeights, load_into


def build_autoencoder_state(
    cfg: AutoencoderConfig, data: DataConfig, perceptual: PerceptualFn, device: torch.device
) -> AutoencoderTrainState:
    model = build_autoencoder(cfg, data).to(device)
    t = cfg.train
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
    )
    state = AutoencoderTrainState(model=model, optimizer=optimizer, perceptual=perceptual)
    if cfg.loss.gan_start_step is not None:
        disc = VideoDiscriminator(cfg.loss.disc_channels, cfg.loss.disc_layers).to(device)
        state.discriminator = disc
        state.disc_optimizer = torch.optim.AdamW(disc.parameters(), lr=cfg.loss.disc_lr, betas=tuple(t.betas))
    return state


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The bare module under a DistributedDataParallel wrapper, so checkpoints load with or without DDP."""
    return getattr(module, "module", module)


def autoencoder_checkpoint(
    state: AutoencoderTrainState, step: int, cfg: AutoencoderConfig, data: DataConfig
) -> dict[str, Any]:
    """Everything needed to resume exactly (the discriminator too: the official code forgot it) or to rebuild
    the model for inference from the checkpoint alone."""
    payload: dict[str, Any] = autoencoder_record(cfg, data) | {
        "step": step,
        "model": _unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": capture_rng_state(),
    }
    if state.discriminator is not None:
        payload["discriminator"] = _unwrap(state.discriminator).state_dict()
        payload["disc_optimizer"] = state.disc_optimizer.state_dict()
    return payload


def restore_autoencoder_state(state: AutoencoderTrainState, payload: dict[str, Any]) -> int:
    """Load a checkpoint into a freshly built state; returns the step to continue from."""
    _unwrap(state.model).load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.discriminator is not None:
        if "discriminator" not in payload:
            raise ValueError("checkpoint has no discriminator but the config enables the GAN phase")
        _unwrap(state.discriminator).load_state_dict(payload["discriminator"])
        state.disc_optimizer.load_state_dict(payload["disc_optimizer"])
    restore_rng_state(payload["rng"])
    return int(payload["step"])


def default_perceptual(cfg: AutoencoderConfig, device: torch.device) -> PerceptualFn:
    if cfg.loss.lpips_weight > 0:
        return load_lpips(cfg.loss.lpips_net).to(device)
    return lambda a, b: a.new_zeros(())


def train_autoencoder(
    cfg: AutoencoderConfig,
    data: DataConfig,
    runtime: RuntimeConfig,
    dataset: Dataset,
    ctx: TrainContext,
    perceptual: PerceptualFn | None = None,
    init: InitialWeights | None = None,
) -> History:
    """The per-worker loop of the `train_autoencoder` stage: resumes from ctx's latest checkpoint if any.

    perceptual: the LPIPS function; None loads `loss.lpips_net` on this worker's device (when its weight is > 0).
    init: the weights to start from (`train.init_from`) when there is no checkpoint of this run to resume: the
    model's only (a fresh optimizer and discriminator, step 0); every checkpoint records where they came from.
    """
    seed_everything(runtime.seed)
    if perceptual is None:
        perceptual = default_perceptual(cfg, ctx.device)
    state = build_autoencoder_state(cfg, data, perceptual, ctx.device)
    history, start = History(), 0
    payload = ctx.resume_payload()
    if payload is not None:
        start = restore_autoencoder_state(state, payload)
        history.rows = list(payload.get("history", []))
    elif init is not None:
        load_into(state.model, init.model, init.source)
    lineage = {"init": init.source.to_dict()} if init is not None else {}
    state.model = ctx.prepare_model(state.model)
    if state.discriminator is not None:
        state.discriminator = ctx.prepare_model(state.discriminator)
    t = cfg.train
    per_rank = per_rank_batch_size(t.batch_size, ctx.world_size)

    def step_fn(step: int) -> Metrics:
        x = batches.take(step)  # (B, C, T, H, W): this rank's share of the schedule's batch of `step`
        generator = step_generator(runtime.seed, step, ctx.rank)
        set_learning_rate(state.optimizer, learning_rate(t, step))
        return autoencoder_train_step(
            state, x, cfg.loss, step, grad_clip=t.grad_clip, precision=runtime.precision, generator=generator
        )

    def checkpoint_fn(step: int, hist: History) -> dict[str, Any]:
        return autoencoder_checkpoint(state, step, cfg, data) | {"history": hist.rows} | lineage

    with training_batches(
        dataset, collate_clips, t, ctx, per_rank=per_rank, seed=runtime.seed, start=start
    ) as batches:
        return run_steps(
            ctx,
            start,
            t.steps,
            step_fn,
            checkpoint_fn,
            checkpoint_every=t.checkpoint_every,
            log_every=t.log_every,
            history=history,
            desc="train_autoencoder",
        )
