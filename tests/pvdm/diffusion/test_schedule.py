from __future__ import annotations

import math

import pytest
import torch

from pvdm.config.base import ConfigError, validate_section
from pvdm.config.diffusion import ProcessConfig
from pvdm.diffusion.objective import q_sample
from pvdm.diffusion.schedule import NoiseSchedule, cosine_betas, linear_betas, make_schedule


def pvdm_beta(t: int, T: int = 1000, start: float = 0.0015, end: float = 0.0195) -> float:
    """Official PVDM / LDM "linear" schedule, written out: sqrt(beta) moves in equal steps from start to end."""
    root = math.sqrt(start) + t / (T - 1) * (math.sqrt(end) - math.sqrt(start))
    return root * root


def abar_by_loop(betas: list[float], t: int) -> float:
    out = 1.0
    for b in betas[: t + 1]:
        out *= 1.0 - b
    return out


def test_default_schedule_is_the_official_one_linear_in_sqrt_beta() -> None:
    s = make_schedule(ProcessConfig())
    assert s.num_timesteps == 1000
    assert s.betas[0].item() == pytest.approx(0.0015, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.0195, abs=1e-15)
    # in the middle it is NOT the beta-linear 0.0105: (sqrt(.0015) + sqrt(.0195))^2 / 4 = 0.0090...
    mid = (math.sqrt(0.0015) + math.sqrt(0.0195)) ** 2 / 4
    assert pvdm_beta(999 / 2) == pytest.approx(mid)
    betas = [pvdm_beta(t) for t in range(1000)]
    for t in (0, 1, 250, 500, 998, 999):
        assert s.betas[t].item() == pytest.approx(betas[t], rel=1e-12)
        assert s.alphas_cumprod[t].item() == pytest.approx(abar_by_loop(betas, t), rel=1e-10)
    assert s.alphas_cumprod[0].item() == pytest.approx(0.9985, rel=1e-12)
    assert 0 < s.alphas_cumprod[-1].item() < 0.01  # the chain ends close to pure noise


def test_ddpm_linear_schedule_is_linear_in_beta_as_ho_et_al() -> None:
    s = make_schedule(ProcessConfig(schedule="ddpm_linear", beta_start=1e-4, beta_end=0.02))
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    steps = s.betas[1:] - s.betas[:-1]
    assert torch.allclose(steps, torch.full_like(steps, (0.02 - 1e-4) / 999))  # equal steps in beta itself
    # Ho et al.'s abar_T for this schedule is about 4e-5: the chain ends in pure noise
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.04e-5, rel=0.05)


def test_cosine_schedule_matches_nichol_dhariwal_closed_form() -> None:
    T, s_off = 50, 0.008

    def f(t: float) -> float:
        return math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2

    sched = NoiseSchedule.from_betas(cosine_betas(T))
    for t in (0, 10, 25, 48):  # abar after step t is f(t + 1) / f(0) until the final clipped beta
        assert sched.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert sched.betas[-1].item() == pytest.approx(0.999)  # f(T) = cos(pi/2)^2 ~ 0: clipped
    assert bool((sched.betas[1:] >= sched.betas[:-1]).all())


def test_linear_betas_helper_and_schedule_validation() -> None:
    assert linear_betas(1, 0.01, 0.02).tolist() == pytest.approx([0.01])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        NoiseSchedule.from_betas(torch.tensor([0.1, 1.0]))
    with pytest.raises(ConfigError, match="beta_end .* must be >= beta_start"):
        validate_section(ProcessConfig, {"beta_start": 0.02, "beta_end": 0.01}, prefix="diffusion.process")
    with pytest.raises(ConfigError, match="diffusion.process.schedule"):
        validate_section(ProcessConfig, {"schedule": "quadratic"}, prefix="diffusion.process")


def test_abar_lookups() -> None:
    s = make_schedule(ProcessConfig(timesteps=10))
    assert s.abar(-1) == 1.0
    assert s.abar(3) == pytest.approx(abar_by_loop([pvdm_beta(t, T=10) for t in range(10)], 3))
    like = torch.zeros(2, 3, 5)
    a = s.abar_at(torch.tensor([0, 9]), like)
    assert a.shape == (2, 1, 1)
    assert a.flatten().tolist() == pytest.approx([s.abar(0), s.abar(9)], rel=1e-6)


def test_q_sample_is_the_closed_form_marginal() -> None:
    s = make_schedule(ProcessConfig())
    z0, noise = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    t = torch.tensor([0, 499, 999])
    out = q_sample(z0, t, noise, s)
    for i, ti in enumerate(t.tolist()):
        abar = abar_by_loop([pvdm_beta(k) for k in range(1000)], ti)
        torch.testing.assert_close(out[i], math.sqrt(abar) * z0[i] + math.sqrt(1 - abar) * noise[i])
