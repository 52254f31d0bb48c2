"""Samplers for eps-prediction models: small pure functions with one shared signature.

    sample_fn(model_fn, shape, schedule, *, steps, generator, eta=0.0, x_T=None, x0_bound=None, progress=False,
              callback=None) -> x_0 (shape)

model_fn(x_t (B, ...), t (B,) long) -> eps (B, ...) already includes the condition and any guidance (`guided`).
A sampler visits `steps` of the T training timesteps, evenly strided and always starting at T - 1
(`sampling_timesteps`); the chain ends at t = -1, where abar = 1, so the last step returns the predicted x_0.
Every random draw comes from `generator`, on the generator's device: the same seed gives the same sample.
`x0_bound` clips each predicted x_0 to [-bound, bound]: the bound of the family's latents (LatentSpec.bound),
None for unbounded latents. `callback(i, x)` is called after step i with the current x (as k-diffusion's samplers
call theirs): progress over several chains, previews, step counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Protocol

import torch
from tqdm.auto import tqdm

from pvdm.diffusion.objective import DenoiserFn, denoise, draw
from pvdm.diffusion.schedule import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]


class SampleFn(Protocol):
    def __call__(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        schedule: NoiseSchedule,
        *,
        steps: int,
        generator: torch.Generator,
        eta: float = 0.0,
        x_T: torch.Tensor | None = None,
        x0_bound: float | None = None,
        progress: bool = False,
        callback: Callback | None = None,
    ) -> torch.Tensor: ...


def classifier_free(with_condition: ModelFn, without_condition: ModelFn, w: float) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022), around any two denoisers of (x_t, t):
    eps = eps_without + w * (eps_with - eps_without). w = 1 is the conditional model alone (one pass); w = 0
    ignores the condition. The one place guidance is computed: on a previous clip, on a class, on both."""
    if w == 1.0:
        return with_condition

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_with, eps_without = with_condition(x, t), without_condition(x, t)
        return eps_without + w * (eps_with - eps_without)

    return eps


def guided(
    model: DenoiserFn, cond: torch.Tensor | None, w: float = 1.0, label: torch.Tensor | None = None
) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022): eps = eps_uncond + w * (eps_cond - eps_uncond).

    cond None means unconditional (the null, all-zero condition). w = 1 is the plain conditional model and
    skips the unconditional pass; w = 0 ignores the condition. `label` (B,) class ids (None: the null class) go
    to every pass unchanged.
    """
    if cond is None:
        return lambda x, t: denoise(model, x, t, torch.zeros_like(x), label)
    return classifier_free(
        lambda x, t: denoise(model, x, t, cond, label),
        lambda x, t: denoise(model, x, t, torch.zeros_like(cond), label),
        w,
    )


def class_guided(model: DenoiserFn, label: torch.Tensor | None, w: float = 1.0) -> DenoiserFn:
    """Classifier-free guidance on class labels: eps_null + w * (eps_label - eps_null), as a denoiser of
    (x, t, cond) for `guided` to wrap. label None: unconditional; w = 1: one pass."""
    if label is None or w == 1.0:
        return lambda x, t, cond: denoise(model, x, t, cond, label)
    return lambda x, t, cond: classifier_free(
        lambda x_, t_: denoise(model, x_, t_, cond, label),
        lambda x_, t_: denoise(model, x_, t_, cond, None),
        w,
    )(x, t)


def sampling_timesteps(num_timesteps: int, steps: int, convention: str = "pvdm") -> list[int]:
    """Descending timesteps t_i = ceil((i + 1) * T / steps) - 1: T - 1 first, every one when steps == T.

    convention "official": the official PVDM DDIM's (losses/ddpm.py `ddim_sample`): float32
    linspace(-1, T - 1, steps + 1) truncated to integers, -1 dropped. The same as pvdm's when steps divides T;
    otherwise some timesteps are one lower (T = 1000, 400 steps: 998, 996, 993, ...)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}] (got {steps})")
    if convention == "official":
        times = torch.linspace(-1, num_timesteps - 1, steps + 1, dtype=torch.float32).int().tolist()
        return list(reversed(times[1:]))
    return [math.ceil((i + 1) * num_timesteps / steps) - 1 for i in reversed(range(steps))]


def predict_x0(x: torch.Tensor, eps: torch.Tensor, abar: float, bound: float | None) -> torch.Tensor:
    """x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), inverting q(x_t | x_0); clipped to [-bound, bound] if given."""
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    return x0 if bound is None else x0.clamp(-bound, bound)


def eps_from_x0(x: torch.Tensor, x0: torch.Tensor, abar: float) -> torch.Tensor:
    """The eps consistent with (x_t, x_0): used after clipping, so the step stays on q's marginals."""
    return (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)


def ddpm_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    abar: float,
    abar_prev: float,
    noise: torch.Tensor,
    x0_bound: float | None,
) -> torch.Tensor:
    """One ancestral step x_t -> x_s (s < t), from the posterior q(x_s | x_t, x_0) (Ho et al. 2020, eqs. 6-7).

    beta = 1 - abar_t / abar_s is the step's effective beta (the schedule's beta_t when s = t - 1);
    mean = sqrt(abar_s) beta / (1 - abar_t) x_0 + sqrt(1 - beta) (1 - abar_s) / (1 - abar_t) x_t,
    var = beta (1 - abar_s) / (1 - abar_t)  (beta-tilde, as in the official PVDM code).
    """
    x0 = predict_x0(x, eps, abar, x0_bound)
    beta = 1 - abar / abar_prev
    coef_x0 = math.sqrt(abar_prev) * beta / (1 - abar)
    coef_xt = math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)
    var = beta * (1 - abar_prev) / (1 - abar)
    return coef_x0 * x0 + coef_xt * x + math.sqrt(var) * noise


def ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    abar: float,
    abar_prev: float,
    noise: torch.Tensor,
    eta: float,
    x0_bound: float | None,
) -> torch.Tensor:
    """One DDIM step x_t -> x_s (Song et al. 2021, eq. 12, with sigma from eq. 16 scaled by eta):

    x_s = sqrt(abar_s) x_0 + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    sigma = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s).
    After clipping x_0 it uses the eps consistent with the clipped x_0, so the step stays on q's marginals.
    """
    x0 = predict_x0(x, eps, abar, x0_bound)
    if x0_bound is not None:
        eps = eps_from_x0(x, x0, abar)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
    direction = math.sqrt(max(1 - abar_prev - sigma**2, 0.0))
    return math.sqrt(abar_prev) * x0 + direction * eps + sigma * noise


def official_ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    abar: float,
    abar_prev: float,
    noise: torch.Tensor,
    eta: float,
    x0_bound: float | None,
) -> torch.Tensor:
    """The official PVDM DDIM step (losses/ddpm.py `ddim_sample`), the same equation as ddim_step but: the
    network's own eps is kept after x_0 is clipped, and the arithmetic is the official one, in float32 tensors
    (coefficients computed in float64 and rounded, as its buffers are), so trajectories agree to float32 rounding.
    """

    def f32(v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32, device=x.device)

    x0 = f32(math.sqrt(1.0 / abar)) * x - f32(math.sqrt(1.0 / abar - 1.0)) * eps
    if x0_bound is not None:
        x0 = x0.clamp(-x0_bound, x0_bound)
    if abar_prev >= 1.0:  # the chain's end (t = -1): the official returns the predicted x_0
        return x0
    a, a_next = f32(abar), f32(abar_prev)
    sigma = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
    c = (1 - a_next - sigma**2).sqrt()
    return (x0 * a_next.sqrt() + c * eps + sigma * noise).to(x.dtype)


StepFn = Callable[[torch.Tensor, torch.Tensor, float, float, torch.Tensor], torch.Tensor]


def _run_chain(
    model_fn: ModelFn,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    steps: int,
    generator: torch.Generator,
    x_T: torch.Tensor | None,
    progress: bool,
    step_fn: StepFn,
    callback: Callback | None = None,
) -> torch.Tensor:
    """The loop both samplers share: x_T ~ N(0, I), then step_fn(x, eps, abar_t, abar_prev, noise) per timestep."""
    device = x_T.device if x_T is not None else generator.device
    x = x_T if x_T is not None else draw(tuple(shape), generator, device)
    ts = sampling_timesteps(schedule.num_timesteps, steps, schedule.convention)
    pairs = list(zip(ts, [*ts[1:], -1], strict=True))
    for i, (t, t_prev) in enumerate(tqdm(pairs, disable=not progress, desc="sampling")):
        t_batch = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        eps = model_fn(x, t_batch).to(x.dtype)
        noise = draw(tuple(x.shape), generator, device, x.dtype) if t_prev >= 0 else torch.zeros_like(x)
        x = step_fn(x, eps, schedule.abar(t), schedule.abar(t_prev), noise)
        if callback is not None:
            callback(i, x)
    return x


@torch.no_grad()
def ddpm_sample(
    model_fn: ModelFn,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    *,
    steps: int,
    generator: torch.Generator,
    eta: float = 0.0,
    x_T: torch.Tensor | None = None,
    x0_bound: float | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DDPM ancestral sampling, Ho et al. 2020, Alg. 2, in the posterior-mean form (so x_0 can be clipped).

    With steps < T it runs on the strided timesteps with each step's effective beta (Nichol & Dhariwal's
    respacing). `eta` is accepted for the shared signature and ignored: ancestral noise is fixed (DDIM eta = 1).
    """
    del eta
    step = partial(ddpm_step, x0_bound=x0_bound)
    return _run_chain(model_fn, shape, schedule, steps, generator, x_T, progress, step, callback)


@torch.no_grad()
def ddim_sample(
    model_fn: ModelFn,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    *,
    steps: int,
    generator: torch.Generator,
    eta: float = 0.0,
    x_T: torch.Tensor | None = None,
    x0_bound: float | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DDIM sampling, Song et al. 2021, eq. 12: deterministic for eta = 0, DDPM's posterior noise for eta = 1.
    With the schedule's convention "official", the official PVDM sampler exactly (its timesteps, its eps)."""
    step_fn = official_ddim_step if schedule.convention == "official" else ddim_step
    step = partial(step_fn, eta=eta, x0_bound=x0_bound)
    return _run_chain(model_fn, shape, schedule, steps, generator, x_T, progress, step, callback)


SAMPLERS: dict[str, SampleFn] = {"ddpm": ddpm_sample, "ddim": ddim_sample}


def get_sampler(name: str) -> SampleFn:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]
