"""`sample`: how videos are drawn from the trained diffusion model (16-frame clips and long videos)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pvdm.config.base import ConfigError, StrictModel
from pvdm.config.diffusion import DiffusionConfig


class SampleConfig(StrictModel):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(100, ge=1, description="denoising steps (a strided subset of the T training steps)")
    eta: float = Field(
        0.0, ge=0.0, description="DDIM stochasticity: 0 deterministic, 1 = DDPM posterior noise"
    )
    clip_guidance: float = Field(
        1.0,
        allow_inf_nan=False,
        description="long videos: w in eps_null + w * (eps_prev - eps_null) for the clips conditioned on the "
        "previous one; 1 = plain conditional",
    )
    guidance: float = Field(
        1.0,
        allow_inf_nan=False,
        description="classes: classifier-free guidance w in eps_null + w * (eps_class - eps_null) for a "
        "class-conditional model; 1 = plain conditional, 0 = unconditional",
    )
    num_videos: int = Field(16, ge=0, description="single-clip videos to generate")
    num_long_videos: int = Field(4, ge=0, description="long videos to generate (Algorithm 1)")
    long_clips: int = Field(4, ge=1, description="clips per long video (frames = long_clips x clip frames)")
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    use_ema: bool = Field(True, description="sample with the EMA weights")
    fps: float = Field(8.0, gt=0, description="frame rate of the written mp4/gif files")

    def check_process(self, diffusion: DiffusionConfig) -> None:
        """The cross-section rule: the sampler can only visit timesteps the model was trained on."""
        timesteps = diffusion.process.timesteps
        if self.steps > timesteps:
            raise ConfigError(
                f"sample.steps: must be <= diffusion.process.timesteps ({timesteps}) (got {self.steps})"
            )
