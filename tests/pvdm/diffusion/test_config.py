from __future__ import annotations

import pytest

from pvdm.config.base import ConfigError, validate_section
from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.sample import SampleConfig


def test_defaults_are_the_official_pvdm_hyperparameters() -> None:
    d = DiffusionConfig()
    u, p, t = d.denoiser, d.process, d.train
    assert (u.model_channels, u.channel_mult, u.num_res_blocks) == (256, [1, 2, 4, 4], 2)
    assert (u.attention_resolutions, u.num_heads, u.use_scale_shift_norm) == ([4, 2, 1], 8, True)
    assert (p.timesteps, p.schedule, p.beta_start, p.beta_end) == (1000, "linear", 0.0015, 0.0195)
    assert (p.prediction, p.clip_x0) == ("eps", True)
    assert (t.lr, t.batch_size, t.ema_decay, t.cond_prob) == (1e-4, 64, 0.9999, 0.3)
    s = SampleConfig()
    assert (s.sampler, s.steps, s.eta, s.long_clips) == ("ddim", 100, 0.0, 4)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"train": {"cond_prob": 1.5}}, "diffusion.train.cond_prob: Input should be less than or equal to 1"),
        (
            {"process": {"schedule": "sigmoid"}},
            "diffusion.process.schedule: Input should be 'linear', 'ddpm_linear' or 'cosine'",
        ),
        ({"denoiser": {"channel_mult": [1, 2], "attention_resolutions": [4]}}, "are not downsample factors"),
        ({"train": {"ema": 0.9}}, "diffusion.train.ema: unknown key"),
    ],
)
def test_bad_diffusion_values_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_section(DiffusionConfig, data, prefix="diffusion")
    assert needle in str(info.value)


def test_sample_steps_cannot_exceed_the_training_chain() -> None:
    diffusion = DiffusionConfig.model_validate({"process": {"timesteps": 50}})
    SampleConfig(steps=50).check_process(diffusion)
    with pytest.raises(
        ConfigError, match=r"sample.steps: must be <= diffusion.process.timesteps \(50\) \(got 100\)"
    ):
        SampleConfig().check_process(diffusion)
    with pytest.raises(ConfigError, match="sample.sampler: Input should be 'ddim' or 'ddpm'"):
        validate_section(SampleConfig, {"sampler": "euler"}, prefix="sample")
