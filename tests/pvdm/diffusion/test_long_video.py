from __future__ import annotations

import pytest
import torch
from einops import repeat

from pvdm.config.diffusion import ProcessConfig
from pvdm.diffusion.long_video import generate_long_video
from pvdm.diffusion.samplers import ddim_sample, ddpm_sample
from pvdm.diffusion.schedule import make_schedule
from pvdm.models.latent import LatentShape

LATENT = LatentShape(channels=2, frames=4, height=3, width=3)  # S = 4 frames per clip, L = 9 + 12 + 12
PIXELS = 6  # the dummy decoder's frame size


class RecordingModel:
    """eps_theta(x, t, cond) = 0.1 x + 0.05 cond, recording every call's condition."""

    def __init__(self) -> None:
        self.conds: list[torch.Tensor] = []

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        cond = torch.zeros_like(x) if cond is None else cond
        self.conds.append(cond.clone())
        return 0.1 * x + 0.05 * cond


def decode(z: torch.Tensor) -> torch.Tensor:
    """(B, C, L) -> (B, 3, S, H, W): every pixel of frame s holds mean(z) + s, so order and origin are checkable."""
    frames = z.mean(dim=(1, 2))[:, None] + torch.arange(LATENT.frames, dtype=z.dtype)  # (B, S)
    return repeat(frames, "b s -> b c s h w", c=3, h=PIXELS, w=PIXELS)


@pytest.mark.parametrize("n_clips", [1, 4])
def test_long_video_conditions_each_clip_on_the_previous_z0(n_clips: int) -> None:
    model, steps, batch = RecordingModel(), 3, 2
    out = generate_long_video(
        model,
        make_schedule(ProcessConfig(timesteps=20)),
        ddim_sample,
        decode,
        n_clips,
        LATENT.packed_shape,
        batch_size=batch,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.video.shape == (batch, 3, n_clips * LATENT.frames, PIXELS, PIXELS)
    assert out.latents.shape == (batch, n_clips, *LATENT.packed_shape)
    assert len(model.conds) == n_clips * steps  # guidance 1: one model call per step
    for clip in range(n_clips):
        conds = model.conds[clip * steps : (clip + 1) * steps]
        expected = torch.zeros_like(out.latents[:, 0]) if clip == 0 else out.latents[:, clip - 1]
        for cond in conds:
            assert torch.equal(cond, expected)
        frames = out.video[:, :, clip * LATENT.frames : (clip + 1) * LATENT.frames]
        torch.testing.assert_close(frames, decode(out.latents[:, clip]))
    assert not torch.equal(out.latents[:, 0], torch.zeros_like(out.latents[:, 0]))


def test_guidance_runs_conditional_and_null_passes_for_later_clips() -> None:
    model, steps = RecordingModel(), 2
    out = generate_long_video(
        model,
        make_schedule(ProcessConfig(timesteps=20)),
        ddpm_sample,
        decode,
        3,
        LATENT.packed_shape,
        batch_size=1,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
        guidance_scale=2.0,
    )
    # clip 1: one null-conditioned call per step; clips 2 and 3: a conditional and a null call per step
    assert len(model.conds) == steps + 2 * 2 * steps
    later = model.conds[steps:]
    assert all(torch.equal(c, out.latents[:, 0]) for c in later[0 : 2 * steps : 2])
    assert all(torch.equal(c, torch.zeros_like(c)) for c in later[1::2])


def test_long_video_is_reproducible_from_the_seed_and_rejects_zero_clips() -> None:
    sched = make_schedule(ProcessConfig(timesteps=20))

    def run(seed: int):
        return generate_long_video(
            RecordingModel(),
            sched,
            ddpm_sample,
            decode,
            2,
            LATENT.packed_shape,
            batch_size=1,
            steps=2,
            generator=torch.Generator().manual_seed(seed),
        ).latents

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    with pytest.raises(ValueError, match="n_clips must be >= 1"):
        generate_long_video(
            RecordingModel(),
            sched,
            ddpm_sample,
            decode,
            0,
            LATENT.packed_shape,
            batch_size=1,
            steps=2,
            generator=torch.Generator(),
        )
