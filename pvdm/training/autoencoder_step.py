"""One optimisation step of the triplane autoencoder: a plain function, no Ray and no tracking inside."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pvdm.config.autoencoder import AELossConfig
from pvdm.device import autocast
from pvdm.metrics.recon import psnr
from pvdm.training.autoencoder_loss import (
    PerceptualFn,
    discriminator_hinge_loss,
    generator_adversarial_loss,
    random_frame_index,
    reconstruction_loss,
)
from pvdm.training.guards import ensure_finite
from pvdm.training.precision import clip_gradients


@dataclass
class AutoencoderTrainState:
    """What a step mutates. `discriminator` is None when the config never starts the GAN phase."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    perceptual: PerceptualFn
    discriminator: nn.Module | None = None
    disc_optimizer: torch.optim.Optimizer | None = None


def gan_active(cfg: AELossConfig, step: int) -> bool:
    return cfg.gan_start_step is not None and step >= cfg.gan_start_step


def autoencoder_train_step(
    state: AutoencoderTrainState,
    x: torch.Tensor,
    cfg: AELossConfig,
    step: int,
    *,
    grad_clip: float,
    precision: str,
    generator: torch.Generator,
) -> dict[str, float]:
    """Generator (autoencoder) update, then a discriminator update once the GAN phase has begun.

    x: (B, 3, S, H, W) in [-1, 1] on the model's device. Returns scalar metrics for logging.
    """
    device = x.device
    frame_index = random_frame_index(x.shape[0], x.shape[2], cfg.lpips_frames, generator)
    use_gan = gan_active(cfg, step) and state.discriminator is not None
    state.model.train()
    with autocast(device, precision):
        x_rec, own, family_logs = state.model(
            x, with_losses=True
        )  # through forward: a DDP wrapper syncs grads
        loss, parts = reconstruction_loss(x, x_rec.float(), state.perceptual, cfg, frame_index)
        for name, term in own.items():  # the family's own terms (e.g. a VQ loss), already weighted
            loss = loss + term
            parts[name] = term.detach()
        if use_gan:  # D's grads from this backward are synced by its DDP wrapper, then zeroed by D's step
            g_loss, fm = generator_adversarial_loss(state.discriminator, x, x_rec, frame_index)
            loss = loss + cfg.gan_weight * g_loss + cfg.feature_matching_weight * fm
            parts |= {"g_loss": g_loss.detach(), "feature_matching": fm.detach()}
    ensure_finite(loss, step, "autoencoder loss")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    metrics = {"loss": loss.item(), "grad_norm": clip_gradients(state.model.parameters(), grad_clip)}
    state.optimizer.step()
    if use_gan:
        metrics["d_loss"] = _discriminator_step(
            state, x, x_rec.detach(), frame_index, step, grad_clip, precision
        )
    metrics |= {k: v.item() for k, v in parts.items()} | family_logs
    metrics["psnr"] = float(psnr(x, x_rec.detach()).mean())  # per clip, as evaluate scores it
    return metrics


def _discriminator_step(
    state: AutoencoderTrainState,
    x: torch.Tensor,
    x_rec: torch.Tensor,
    frame_index: torch.Tensor,
    step: int,
    grad_clip: float,
    precision: str,
) -> float:
    with autocast(x.device, precision):  # one forward (real and fake together) and one backward, as DDP needs
        d_loss = discriminator_hinge_loss(state.discriminator, x, x_rec, frame_index)
    ensure_finite(d_loss, step, "discriminator loss")
    state.disc_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    clip_gradients(state.discriminator.parameters(), grad_clip)
    state.disc_optimizer.step()
    return d_loss.item()
