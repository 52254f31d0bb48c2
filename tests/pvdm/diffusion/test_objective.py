from __future__ import annotations

import math

import pytest
import torch

from pvdm.config.diffusion import ProcessConfig
from pvdm.diffusion.objective import choose_conditions, eps_loss
from pvdm.diffusion.schedule import make_schedule

SCHED = make_schedule(ProcessConfig())


def test_conditions_follow_cond_prob_and_the_has_prev_mask() -> None:
    z_prev = torch.randn(4, 2, 5)
    has_prev = torch.tensor([True, False, True, False])
    cond, used = choose_conditions(z_prev, has_prev, 4, 1.0, torch.Generator().manual_seed(0))
    assert used.tolist() == [True, False, True, False]
    torch.testing.assert_close(cond, z_prev * has_prev[:, None, None])  # no predecessor -> null condition
    cond, used = choose_conditions(z_prev, None, 4, 0.0, torch.Generator().manual_seed(0))
    assert not used.any() and torch.equal(cond, torch.zeros_like(z_prev))
    cond, used = choose_conditions(None, None, 4, 1.0, torch.Generator().manual_seed(0))
    assert cond is None and not used.any()


def test_conditioned_share_is_about_cond_prob_and_per_sample() -> None:
    n = 20_000
    z_prev = torch.ones(n, 1, 1)
    cond, used = choose_conditions(z_prev, None, n, 0.3, torch.Generator().manual_seed(1))
    assert used.float().mean().item() == pytest.approx(0.3, abs=0.015)  # 5 sigma ~ 0.016
    assert torch.equal(cond.flatten().bool(), used)  # each sample gets all of z_prev or nothing


def test_eps_loss_is_zero_for_the_exact_denoiser_and_one_for_a_zero_model() -> None:
    z0 = torch.rand(64, 2, 30) * 2 - 1

    def oracle(
        z_t, t, cond
    ):  # knows z0, so recovers eps exactly from z_t = sqrt(abar) z0 + sqrt(1 - abar) eps
        abar = SCHED.alphas_cumprod[t].float()[:, None, None]
        return (z_t - abar.sqrt() * z0) / (1 - abar).sqrt()

    def zero(z_t, t, cond):
        return torch.zeros_like(z_t)

    assert eps_loss(oracle, z0, None, SCHED, torch.Generator().manual_seed(0)).item() < 1e-8
    loss = eps_loss(zero, z0, None, SCHED, torch.Generator().manual_seed(0)).item()
    assert loss == pytest.approx(1.0, abs=5 / math.sqrt(64 * 60))  # E[eps^2] = 1


def test_eps_loss_passes_the_condition_and_draws_timesteps_over_the_whole_chain() -> None:
    seen = {}

    def spy(z_t, t, cond):
        seen["t"], seen["cond"] = t, cond
        return torch.zeros_like(z_t)

    cond = torch.randn(512, 1, 3)
    eps_loss(spy, torch.zeros(512, 1, 3), cond, SCHED, torch.Generator().manual_seed(0))
    assert seen["cond"] is cond
    assert seen["t"].min() >= 0 and seen["t"].max() <= 999
    assert seen["t"].max() - seen["t"].min() > 900  # spread over the chain, not a constant


def test_labels_are_dropped_to_the_null_class_at_the_configured_rate() -> None:
    from pvdm.diffusion.objective import drop_labels

    labels = torch.arange(4000) % 3
    dropped = drop_labels(labels, 0.1, torch.Generator().manual_seed(0))
    null = dropped == -1
    assert 0.08 < null.float().mean() < 0.12 and torch.equal(dropped[~null], labels[~null])
    assert torch.equal(drop_labels(labels, 0.0, torch.Generator()), labels)
    assert drop_labels(None, 0.5, torch.Generator()) is None
