"""VIDM's training step: the content generator on random frames, the motion generator on random (first frame,
frame n - 1, frame n) triples of the same clips, each under the robustness penalty (or DDPM's squared error).

    vidm_train_step(content, motion, optimizer, clips (B, C, T, H, W), schedule, generator) -> losses

One optimizer holds both networks and SpyNet (inside the motion generator): the implicit condition is learned
through the motion generator's loss, as the paper trains it.
"""

from __future__ import annotations

import torch

from pvdm.diffusion.objective import q_sample
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.models.vidm_motion import MotionGenerator
from pvdm.models.vidm_unet import FrameUNet, denoising_loss


def _noised(
    x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    return q_sample(x0, t, noise, schedule), t, noise


def content_loss(
    content: FrameUNet, clips: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator, robust: bool
) -> torch.Tensor:
    """Denoising loss on one random frame of each clip (the content generator models q(x_0) over frames)."""
    pick = torch.randint(0, clips.shape[2], (clips.shape[0],), generator=generator)
    frames = clips[torch.arange(clips.shape[0]), :, pick.to(clips.device)]
    x_t, t, noise = _noised(frames, schedule, generator)
    return denoising_loss(content(x_t, t), noise, robust)


def motion_loss(
    motion: MotionGenerator,
    clips: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    robust: bool,
) -> torch.Tensor:
    """Denoising loss on frame n (random in 1..T-1) given the clip's first frame and frame n - 1."""
    b = torch.arange(clips.shape[0], device=clips.device)
    n = torch.randint(1, clips.shape[2], (clips.shape[0],), generator=generator).to(clips.device)
    x_t, t, noise = _noised(clips[b, :, n], schedule, generator)
    return denoising_loss(motion(x_t, t, n, clips[:, :, 0], clips[b, :, n - 1]), noise, robust)


def vidm_train_step(
    content: FrameUNet,
    motion: MotionGenerator,
    optimizer: torch.optim.Optimizer,
    clips: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    *,
    robust: bool = True,
    grad_clip: float = 1.0,
) -> dict[str, float]:
    """One optimizer step on both generators; returns their losses."""
    losses = {
        "content_loss": content_loss(content, clips, schedule, generator, robust),
        "motion_loss": motion_loss(motion, clips, schedule, generator, robust),
    }
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_([*content.parameters(), *motion.parameters()], grad_clip)
    optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}
