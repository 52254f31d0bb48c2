"""VIDM's sampling: frame 0 from the content generator, then frames 1, 2, ... from the motion generator, each
conditioned on frame 0 and the latest frame, for any number of frames (the paper's autoregressive generation).

The implicit motion condition is computed once per frame (it depends only on clean frames), not once per step.
Any sampler of pvdm.diffusion.samplers (DDPM ancestral, the paper's protocol; DDIM as an option) runs each frame's
chain; one progress bar counts frames x steps. Class-conditional generators are guided on the label
(eps_null + w * (eps_label - eps_null)) in both generators.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from pvdm.diffusion.samplers import ModelFn, classifier_free, get_sampler
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.families.vidm.frame_unet import FrameUNet
from pvdm.families.vidm.motion import MotionGenerator

# eps(x_t, t, label) of one generator with everything else bound
LabelledFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def label_guided(fn: LabelledFn, label: torch.Tensor | None, w: float) -> ModelFn:
    """Classifier-free guidance on the class (pvdm.diffusion.samplers.classifier_free); one pass when
    unconditional or w = 1."""
    if label is None:
        return lambda x, t: fn(x, t, None)
    return classifier_free(lambda x, t: fn(x, t, label), lambda x, t: fn(x, t, None), w)


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
    label: torch.Tensor | None = None,
    guidance: float = 1.0,
    x0_bound: float | None = 1.0,
    progress: bool = False,
) -> torch.Tensor:
    """Videos (B, C, frames, H, W) in [-1, 1]; shape = (B, C, H, W) of one frame; label (B,) class ids or None."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1 (got {frames})")
    sample = get_sampler(sampler)
    bar = tqdm(total=frames * steps, desc="VIDM frames x steps", disable=not progress)

    def chain(fn: LabelledFn) -> torch.Tensor:
        return sample(label_guided(fn, label, guidance), shape, schedule, steps=steps, generator=generator, eta=eta,
                      x0_bound=x0_bound, callback=lambda i, x: bar.update())  # fmt: skip

    first = chain(lambda x, t, y: content(x, t, None, y))
    video, latest = [first], first
    for n in range(1, frames):
        index = torch.full((shape[0],), n, device=first.device, dtype=torch.long)
        z = motion.condition(first, latest)
        latest = chain(
            lambda x, t, y, index=index, latest=latest, z=z: motion(x, t, index, first, latest, z, y)
        )
        video.append(latest)
    bar.close()
    return torch.stack(video, dim=2)
