"""The diffusion process on packed triplane latents (B, C, L): schedule, objective, samplers, long videos.

The network lives in pvdm.models.unet; nothing here knows about planes.
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
