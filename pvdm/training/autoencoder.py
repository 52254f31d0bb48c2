"""Building, checkpointing and restoring the autoencoder's training state."""

from __future__ import annotations

from typing import Any

import torch

from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.models.autoencoder import TriplaneAutoencoder
from pvdm.models.discriminator import VideoDiscriminator
from pvdm.training.autoencoder_loss import PerceptualFn
from pvdm.training.autoencoder_step import AutoencoderTrainState
from pvdm.training.checkpoint import capture_rng_state, restore_rng_state


def build_autoencoder(cfg: AutoencoderConfig, data: DataConfig) -> TriplaneAutoencoder:
    return TriplaneAutoencoder(cfg.model, frames=data.frames, resolution=data.resolution)


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
    payload: dict[str, Any] = {
        "kind": "autoencoder",
        "step": step,
        "config": {"autoencoder": cfg.model_dump(mode="json"), "data": data.model_dump(mode="json")},
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


def autoencoder_from_checkpoint(payload: dict[str, Any]) -> TriplaneAutoencoder:
    """Rebuild the trained model for inference from a checkpoint payload alone (eval mode)."""
    cfg = AutoencoderConfig.model_validate(payload["config"]["autoencoder"])
    data = DataConfig.model_validate(payload["config"]["data"])
    model = build_autoencoder(cfg, data)
    model.load_state_dict(payload["model"])
    return model.eval()
