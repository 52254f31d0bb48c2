"""VIDM's sampling: frame 0 from the content generator, then frames 1, 2, ... from the motion generator, each
conditioned on frame 0 and the latest frame, for any number of frames (the paper's autoregressive generation).

The implicit motion condition is computed once per frame (it depends only on clean frames), not once per step.
Any sampler of pvdm.diffusion.samplers (DDPM ancestral, the paper's protocol; DDIM as an option) runs each frame's
chain; one progress bar counts frames x steps.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pvdm.diffusion.samplers import ModelFn, get_sampler
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.models.vidm_motion import MotionGenerator
from pvdm.models.vidm_unet import FrameUNet


@torch.no_grad()
def sample_video(
    content: FrameUNet,
    motion: MotionGenerator,
    schedule: NoiseSchedule,
    shape: tuple[int, int, int, int],
    frames: int,
    *,
    steps: int,
    generator: torch.Generator,
    sampler: str = "ddpm",
    eta: float = 0.0,
    progress: bool = False,
) -> torch.Tensor:
    """Videos (B, C, frames, H, W) in [-1, 1]; shape = (B, C, H, W) of one frame."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1 (got {frames})")
    sample = get_sampler(sampler)
    bar = tqdm(total=frames * steps, desc="VIDM frames x steps", disable=not progress)

    def counted(fn: ModelFn) -> ModelFn:
        def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            bar.update()
            return fn(x, t)

        return call

    def chain(fn: ModelFn) -> torch.Tensor:
        return sample(counted(fn), shape, schedule, steps=steps, generator=generator, eta=eta, x0_bound=1.0)

    first = chain(lambda x, t: content(x, t))
    video, latest = [first], first
    for n in range(1, frames):
        index = torch.full((shape[0],), n, device=first.device, dtype=torch.long)
        z = motion.condition(first, latest)
        latest = chain(lambda x, t, index=index, latest=latest, z=z: motion(x, t, index, first, latest, z))
        video.append(latest)
    bar.close()
    return torch.stack(video, dim=2)
