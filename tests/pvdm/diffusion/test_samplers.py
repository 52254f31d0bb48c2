"""Sampler golden values from dummy noise models whose output is known, computed by hand from the papers' formulas."""

from __future__ import annotations

import itertools
import math
import operator

import pytest
import torch

from pvdm.config.diffusion import ProcessConfig
from pvdm.diffusion.samplers import (
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    get_sampler,
    guided,
    sampling_timesteps,
)
from pvdm.diffusion.schedule import make_schedule
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape
from pvdm.models.unet import TriplaneUNet

T = 1000
BETAS = [(math.sqrt(0.0015) + t / (T - 1) * (math.sqrt(0.0195) - math.sqrt(0.0015))) ** 2 for t in range(T)]
ABAR = list(itertools.accumulate((1 - b for b in BETAS), operator.mul))


def test_sampling_timesteps_stride_from_the_last_step() -> None:
    assert sampling_timesteps(1000, 100) == list(
        range(999, 0, -10)
    )  # 999, 989, ..., 9 (as the official code)
    assert sampling_timesteps(10, 10) == list(range(9, -1, -1))
    assert sampling_timesteps(10, 3) == [9, 6, 3]
    assert sampling_timesteps(10, 1) == [9]
    with pytest.raises(ValueError, match="steps must be in"):
        sampling_timesteps(10, 11)


def test_one_ddpm_step_matches_ho_et_al_equation_11() -> None:
    """eps_theta = 0.5 x; x_{t-1} = (x - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_tilde_t) z."""
    t = 500
    x, z = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    eps = 0.5 * x
    beta, abar, abar_prev = BETAS[t], ABAR[t], ABAR[t - 1]
    mean = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    expected = mean + math.sqrt(beta_tilde) * z
    got = ddpm_step(x, eps, abar, abar_prev, z, x0_bound=None)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_one_ddim_step_with_a_constant_noise_model() -> None:
    """eps_theta = c: x_s = sqrt(abar_s) (x - sqrt(1 - abar_t) c) / sqrt(abar_t) + sqrt(1 - abar_s) c."""
    t, s, c = 999, 989, 0.3
    x = torch.linspace(-2.0, 2.0, 12, dtype=torch.float64).reshape(1, 3, 4)
    eps = torch.full_like(x, c)
    abar, abar_prev = ABAR[t], ABAR[s]
    expected = (
        math.sqrt(abar_prev) * (x - math.sqrt(1 - abar) * c) / math.sqrt(abar) + math.sqrt(1 - abar_prev) * c
    )
    got = ddim_step(x, eps, abar, abar_prev, torch.randn_like(x), eta=0.0, x0_bound=None)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_ddim_step_clips_x0_to_the_latent_bound_and_keeps_eps_consistent() -> None:
    t, s = 100, 50
    x = torch.tensor([[[3.0, -3.0, 0.2]]], dtype=torch.float64)
    eps = torch.zeros_like(x)  # x0_hat = x / sqrt(abar_t): 3.09, -3.09, 0.206
    abar, abar_prev = ABAR[t], ABAR[s]
    x0 = (x / math.sqrt(abar)).clamp(-1, 1)
    eps_consistent = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    expected = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps_consistent
    got = ddim_step(x, eps, abar, abar_prev, torch.zeros_like(x), eta=0.0, x0_bound=1.0)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bound", [None, 1.0, 0.5])
def test_ddim_with_eta_one_is_the_ddpm_posterior(bound: float | None) -> None:
    x, z = 2 * torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 4, 6, dtype=torch.float64)
    eps = torch.randn_like(x)
    for t, s in [(999, 989), (500, 499), (40, 3)]:
        a = ddim_step(x, eps, ABAR[t], ABAR[s], z, eta=1.0, x0_bound=bound)
        b = ddpm_step(x, eps, ABAR[t], ABAR[s], z, x0_bound=bound)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_two_step_ddim_chain_golden_value() -> None:
    """T = 10, steps = 2: timesteps 9 -> 4 -> end, with eps_theta(x) = 0.2 x, computed by hand."""
    sched = make_schedule(ProcessConfig(timesteps=10))
    abar = sched.alphas_cumprod.tolist()
    x_T = torch.randn(1, 2, 5, dtype=torch.float64)

    def model_fn(x, t):
        return 0.2 * x

    x = x_T
    for t, s_abar in [(9, abar[4]), (4, 1.0)]:
        x0 = (x - math.sqrt(1 - abar[t]) * 0.2 * x) / math.sqrt(abar[t])
        x = math.sqrt(s_abar) * x0 + math.sqrt(1 - s_abar) * 0.2 * x
    g = torch.Generator().manual_seed(0)
    got = ddim_sample(model_fn, (1, 2, 5), sched, steps=2, generator=g, x_T=x_T, x0_bound=None)
    torch.testing.assert_close(got, x, rtol=1e-10, atol=1e-10)


def test_ddpm_chain_draws_its_noise_from_the_generator() -> None:
    """steps = 2 on T = 10 (9 -> 4 -> end), eps_theta = 0: one noise draw, between the two steps."""
    sched = make_schedule(ProcessConfig(timesteps=10))
    a9, a4 = sched.abar(9), sched.abar(4)
    x_T = 0.1 * torch.randn(1, 2, 5, dtype=torch.float64)
    z = torch.randn((1, 2, 5), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    beta = 1 - a9 / a4
    x0 = x_T / math.sqrt(a9)  # eps = 0; |x0| < 1 so clipping is inactive
    x4 = math.sqrt(a4) * beta / (1 - a9) * x0 + math.sqrt(1 - beta) * (1 - a4) / (1 - a9) * x_T
    x4 = x4 + math.sqrt(beta * (1 - a4) / (1 - a9)) * z
    expected = x4 / math.sqrt(a4)  # last step: x0 from x_4 with eps = 0

    def zero_model(x, t):
        return torch.zeros_like(x)

    g = torch.Generator().manual_seed(7)
    got = ddpm_sample(zero_model, (1, 2, 5), sched, steps=2, generator=g, x_T=x_T, x0_bound=1.0)
    torch.testing.assert_close(got, expected.clamp(-1, 1), rtol=1e-10, atol=1e-10)


def tiny_model() -> tuple[TriplaneUNet, LatentShape]:
    latent = LatentShape(2, 3, 4, 4)
    cfg = TriplaneUNetConfig(
        model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2
    )
    model = TriplaneUNet(cfg, latent).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # so the zero-initialised output conv predicts something
    return model, latent


def test_ddim_eta_zero_is_deterministic_and_ddpm_follows_the_seed() -> None:
    model, latent = tiny_model()
    sched = make_schedule(ProcessConfig(timesteps=50))
    shape = (2, *latent.packed_shape)

    def model_fn(x, t):
        return model(x, t, None)

    def run(sampler, seed):
        return sampler(
            model_fn, shape, sched, steps=5, generator=torch.Generator().manual_seed(seed), x0_bound=1.0
        )

    first = run(ddim_sample, 3)
    assert torch.equal(first, run(ddim_sample, 3))
    assert first.shape == shape and first.abs().max() <= 1.0  # x0 clipped to the latent bound
    x_T = torch.randn((*shape,), generator=torch.Generator().manual_seed(3))
    other_gen = torch.Generator().manual_seed(99)  # eta = 0 uses no noise after x_T
    again = ddim_sample(model_fn, shape, sched, steps=5, generator=other_gen, x_T=x_T, x0_bound=1.0)
    assert torch.equal(first, again)
    assert torch.equal(run(ddpm_sample, 3), run(ddpm_sample, 3))
    assert not torch.equal(run(ddpm_sample, 3), run(ddpm_sample, 4))
    torch.testing.assert_close(
        run(ddpm_sample, 5),
        ddim_sample(
            model_fn, shape, sched, steps=5, eta=1.0, generator=torch.Generator().manual_seed(5), x0_bound=1.0
        ),
    )


def test_classifier_free_guidance_combination() -> None:
    calls = []

    def model(x, t, cond, label=None):
        calls.append(cond.clone())
        return 2.0 * cond + 1.0  # eps_cond = 2 c + 1, eps_uncond = 1

    x, t = torch.zeros(1, 2, 3), torch.tensor([0])
    c = torch.arange(6.0).reshape(1, 2, 3)
    torch.testing.assert_close(guided(model, c, 3.0)(x, t), 1.0 + 3.0 * (2.0 * c))
    assert len(calls) == 2 and torch.equal(calls[0], c) and torch.equal(calls[1], torch.zeros_like(c))
    calls.clear()
    torch.testing.assert_close(guided(model, c, 1.0)(x, t), 2.0 * c + 1.0)  # w = 1: conditional, one call
    assert len(calls) == 1
    torch.testing.assert_close(guided(model, c, 0.0)(x, t), torch.ones_like(c))  # w = 0: unconditional
    calls.clear()
    torch.testing.assert_close(guided(model, None, 5.0)(x, t), torch.ones_like(x))  # no condition: null input
    assert len(calls) == 1 and torch.equal(calls[0], torch.zeros_like(x))


def test_get_sampler() -> None:
    assert get_sampler("ddim") is ddim_sample and get_sampler("ddpm") is ddpm_sample
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        get_sampler("euler")


def test_class_guidance_combines_the_labelled_and_the_null_pass() -> None:
    from pvdm.diffusion.samplers import class_guided

    seen = []

    def model(x, t, cond, label=None):
        seen.append(label)
        return (
            torch.full_like(x, 1.0) if label is None else torch.full_like(x, 3.0)
        )  # eps_null 1, eps_label 3

    x, t, label = torch.zeros(2, 3), torch.tensor([5, 5]), torch.tensor([0, 1])
    torch.testing.assert_close(class_guided(model, label, 2.5)(x, t, None), torch.full_like(x, 1 + 2.5 * 2))
    assert seen[0] is label and seen[1] is None
    seen.clear()
    torch.testing.assert_close(class_guided(model, label, 1.0)(x, t, None), torch.full_like(x, 3.0))
    assert len(seen) == 1  # w = 1: the conditional pass only
    torch.testing.assert_close(
        class_guided(model, None, 4.0)(x, t, None), torch.ones_like(x)
    )  # no label: null
