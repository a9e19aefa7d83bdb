"""Sampler loops over diffusers schedulers (used as they are), k-diffusion style.

`sample(denoise, x, scheduler, steps)` runs the reverse process from `x` (pure noise, or a noised clean start
from `noised_start` for partial / img2img-style sampling at a given strength). `denoise(x, t)` is any callable
taking x [B, ...] and float timesteps [B]. The samplers are named and built in engine.samplers (the registry):
"ddim" (the paper's, 200 steps, eta 0) and "dpmpp" (DPM-Solver++ multistep, order 2 or 3; from noise 15
log-SNR-spaced 3M steps, bench/sweep_steps.py). Both clip the predicted clean sample to the model space
[-1, 1], as the data lives there: the sampler rewrites the model's prediction so that its implied x0 is clipped
(what DDIM's clip_sample does), instead of diffusers' dynamic thresholding, whose per-step quantile over a long clip
is costly on CPU and, with a maximum of 1, clips to the same range anyway. Loops that call scheduler.step themselves
should pass their prediction through `clip_prediction` (DDIM also keeps its own clip_sample on).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from diffusers import DPMSolverMultistepScheduler
from tqdm.auto import tqdm

from engine.samplers import get_sampler

# timesteps evenly spaced in t | in log signal-to-noise ratio | the same from a log-SNR floor (DPM-Solver++ only)
SPACINGS = ("linear", "logsnr", "logsnr_floor")
# Where "logsnr_floor" spacing lands after its first step from pure noise. The cosine schedule's log-SNR falls
# steeply near T (lambda(999) = -9.9, lambda(998) = -6.5, lambda(987) = -4.0): even log-SNR steps from lambda(999)
# spend 6 of 15 U-Net calls at t >= 994, where x_t is noise to within alpha = 0.02. From this floor, 12 steps of
# the stochastic sampler measured as 15 plain log-SNR steps on the piano candidate (bench/RESULTS.md, 2026-12-07).
LOGSNR_FLOOR = -4.0
PAPER_DDIM_STEPS = 200

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]


def make_scheduler(sampler: str, num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                   prediction_type: str = "epsilon", order: int = 2, steps: int | None = None):
    """A fresh diffusers scheduler for the registered `sampler` (engine.samplers) over the training noise schedule.
    `order`: DPM-Solver++'s multistep order (1, 2 or 3; ignored by DDIM). `steps`: the step count it will run,
    where known (see below).

    DDIM with a step count that does not divide the training timesteps runs as first-order DPM-Solver++ on the same
    trailing timesteps: the same DDIM update (eta 0; equal to diffusers' DDIMScheduler to 4e-5 at 200 steps), but
    stepping to the actual next timestep. DDIMScheduler steps to t - T // steps, which near t = T (alpha-bar
    triples per timestep on the cosine schedule) is the wrong noise level: DDIM 150/300/400 measured 0.44/0.43/
    0.87 nats of log-mel from DDIM 1000, worse than DDIM 25, against 0.05/-/0.01 this way (bench/RESULTS.md)."""
    common = {"num_train_timesteps": num_train_timesteps, "beta_schedule": beta_schedule,
              "prediction_type": prediction_type}
    return get_sampler(sampler).build(common, order, steps)


def logsnr_timesteps(alphas_cumprod: torch.Tensor, steps: int, floor: float | None = None) -> list[int]:
    """`steps` distinct integer timesteps, from the last training timestep down, evenly spaced in log-SNR
    lambda(t) = log(alpha_t / sigma_t) over [lambda(T-1), lambda(0)) (DPM-Solver's recommended spacing), or, with a
    `floor`, T-1 first and the other steps evenly spaced over [floor, lambda(0)) (LOGSNR_FLOOR says why). Integer
    timesteps keep the solver's noise level and the model's conditioning the same (diffusers' use_lu_lambdas
    rounds several steps to one timestep near T with the cosine schedule, and measured 0.15 nats further from a
    1000-step DDIM solution). Where the schedule is steep (lambda(999) - lambda(998) = 3.5 for the cosine one),
    neighbouring targets would share a timestep; they take the next free one down."""
    abar = alphas_cumprod.double()
    lam = 0.5 * torch.log(abar / (1 - abar))  # decreasing in t
    if floor is None:
        targets = torch.linspace(float(lam[-1]), float(lam[0]), steps + 1)[:-1].tolist()
    else:
        targets = [float(lam[-1])] + torch.linspace(max(floor, float(lam[-1])), float(lam[0]), steps)[:-1].tolist()
    timesteps: list[int] = []
    for i, target in enumerate(targets):
        t = int((lam - target).abs().argmin())
        if timesteps:
            t = min(t, timesteps[-1] - 1)
        timesteps.append(max(t, steps - 1 - i))  # leave one timestep per remaining step
    return timesteps


def set_timesteps(scheduler, steps: int, spacing: str = "linear") -> None:
    """scheduler.set_timesteps for `steps` with the given spacing (see make_scheduler)."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}: use {' or '.join(SPACINGS)}")
    if spacing == "linear":
        scheduler.set_timesteps(steps)
    elif not isinstance(scheduler, DPMSolverMultistepScheduler):
        raise ValueError(f"{spacing} spacing needs a DPM-Solver++ sampler, dpmpp or sde (DDIM steps at fixed "
                         "intervals only)")
    else:
        floor = LOGSNR_FLOOR if spacing == "logsnr_floor" else None
        scheduler.set_timesteps(timesteps=logsnr_timesteps(scheduler.alphas_cumprod, steps, floor))


def solver_settings(sampler: str, from_noise: bool) -> tuple[str, int]:
    """(spacing, multistep order) the engine runs `sampler` with, from pure noise or from a noised start
    (the registry's `Sampler.solver`; engine.samplers says why each)."""
    return get_sampler(sampler).solver(from_noise)


def start_index_for(steps: int, strength: float) -> int:
    """Index of the first of `steps` timesteps to run when noising a clean start to `strength` (0, 1]."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    return min(steps - 1, steps - max(1, round(steps * strength)))


def noised_start(x0: torch.Tensor, scheduler, steps: int, strength: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Forward-noise clean x0 to the timestep where `strength` of the `steps` remain (diffusers' add_noise).
    Returns (x_t, start_index) to pass to `sample(..., start_index=...)`. strength 1 is (almost) pure noise."""
    scheduler.set_timesteps(steps)
    start = start_index_for(steps, strength)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = scheduler.timesteps[start:start + 1].repeat(x0.shape[0])
    return scheduler.add_noise(x0, noise, t), start


def eps_from_prediction(prediction: torch.Tensor, x: torch.Tensor, abar: torch.Tensor | float, kind: str
                        ) -> torch.Tensor:
    """The noise eps a model's `prediction` at x_t = x implies, for its prediction type (epsilon: itself;
    v_prediction: sqrt(abar) v + sqrt(1 - abar) x). `abar`: alpha-bar of the timestep, broadcastable to x."""
    if kind == "epsilon":
        return prediction
    if kind == "v_prediction":
        abar = torch.as_tensor(abar, dtype=x.dtype, device=x.device)
        return abar.sqrt() * prediction + (1 - abar).sqrt() * x
    raise ValueError(f"no eps conversion for prediction type {kind!r}")


def clip_prediction(prediction: torch.Tensor, x: torch.Tensor, t: torch.Tensor, scheduler,
                    limit: float = 1.0) -> torch.Tensor:
    """The prediction whose implied clean sample x0 is clipped to [-limit, limit] (t: float timesteps [B])."""
    kind = scheduler.config.prediction_type
    table = scheduler.alphas_cumprod  # index where the table lives, then move only the batch's values
    abar = table[t.long().to(table.device)].to(x.device, x.dtype).reshape(-1, *[1] * (x.ndim - 1))
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if kind == "epsilon":
        x0 = ((x - s * prediction) / a).clamp(-limit, limit)
        return (x - a * x0) / s
    if kind == "sample":
        return prediction.clamp(-limit, limit)
    if kind == "v_prediction":
        x0 = (a * x - s * prediction).clamp(-limit, limit)
        return a * (x - a * x0) / s - s * x0  # v = a*eps - s*x0, eps implied by x and the clipped x0
    raise ValueError(f"unknown prediction type {kind!r}")


@torch.no_grad()
def sample(denoise: Denoise, x: torch.Tensor, scheduler, steps: int, callback: Callback | None = None,
           disable: bool = False, start_index: int = 0,
           generator: torch.Generator | list[torch.Generator] | None = None,
           clip: float | None = 1.0, spacing: str = "linear") -> torch.Tensor:
    """Run `steps` scheduler steps (from `start_index`) starting at `x` [B, ...]; returns the final sample.

    `spacing`: "linear" timesteps (what a partial start at a strength needs: strength s starts near t = s * T),
    "logsnr" (logsnr_timesteps; DPM-Solver++ from pure noise: with the cosine schedule and the default model, 15
    such steps land 2.8x closer in log-mel to DDIM 200's clip than 15 linear ones, and at its loudness where linear
    steps lose 2-3 dB; bench/RESULTS.md) or "logsnr_floor" (the same from LOGSNR_FLOOR after the first step).
    `callback` receives {"i", "steps", "t", "x"} after each step (i counts from 0 over the steps actually run);
    an exception raised in it aborts sampling and propagates. `clip`: range of the implied x0 (None: off).
    `generator`: the noise a stochastic sampler ("sde") adds at each step; a list gives each batch row its own
    (diffusers' randn_tensor), so a row is the clip its seed gives alone."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    set_timesteps(scheduler, steps, spacing)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start_index)
    timesteps = scheduler.timesteps[start_index:]
    for i, t in enumerate(tqdm(timesteps, disable=disable, desc="sampling", leave=False)):
        model_input = scheduler.scale_model_input(x, t)
        t_batch = torch.full((x.shape[0],), float(t), dtype=torch.float32)
        prediction = denoise(model_input, t_batch)
        if clip is not None:
            prediction = clip_prediction(prediction, model_input, t_batch, scheduler, clip)
        x = scheduler.step(prediction, t, x, generator=generator).prev_sample
        if callback is not None:
            callback({"i": i, "steps": len(timesteps), "t": float(t), "x": x})
    return x
