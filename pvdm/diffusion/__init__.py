"""The diffusion process shared by every family: schedule, objective, samplers, EMA, long videos.

Samplers and the objective work on any tensor (B, ...): PVDM's packed triplane latents (B, C, L), the 3D UNet's
inputs (B, C, T, H, W), VIDM's frames. The networks live in pvdm.models; the one module here that imports them is
autoregressive.py, VIDM's frame-by-frame sampling, which takes its content and motion generators
(pvdm.models.vidm_unet.FrameUNet, pvdm.models.vidm_motion.MotionGenerator) and calls them. Nothing else here knows
about a family's network or its planes.
"""

from pvdm.diffusion.long_video import LongVideo, generate_long_video
from pvdm.diffusion.objective import choose_conditions, eps_loss, q_sample
from pvdm.diffusion.samplers import (
    SAMPLERS,
    ddim_sample,
    ddpm_sample,
    get_sampler,
    guided,
    sampling_timesteps,
)
from pvdm.diffusion.schedule import NoiseSchedule, cosine_betas, linear_betas, make_schedule

__all__ = [
    "SAMPLERS",
    "LongVideo",
    "NoiseSchedule",
    "choose_conditions",
    "cosine_betas",
    "ddim_sample",
    "ddpm_sample",
    "eps_loss",
    "generate_long_video",
    "get_sampler",
    "guided",
    "linear_betas",
    "make_schedule",
    "q_sample",
    "sampling_timesteps",
]
