"""The sampler registry: every sampler the engine runs, named once, with what it supports and how it is built.

A sampler here is a diffusers scheduler used as it is (the loops are in engine.sampling and
engine.masked_sampling). To add one: write its `build` and add a `Sampler` to `SAMPLERS`; the bundle manifest,
`msanii-render --sampler`, `/msanii/set sampler` and the masked samplers all read their choices from here.

Importing this module loads neither torch nor diffusers (the OSC server validates sampler names without them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


class UnknownSampler(ValueError):
    """A sampler name not in `SAMPLERS`; the message lists the known ones."""


def _ddim(common: dict, order: int, steps: int | None) -> Any:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    if steps is not None and common["num_train_timesteps"] % steps:
        # A step count that does not divide T: the same DDIM update (eta 0) stepping to the true next timestep,
        # as first-order DPM-Solver++ on the same trailing timesteps (engine.sampling.make_scheduler says why).
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=1,
                                           timestep_spacing="trailing")
    # "trailing" spacing starts at the last training timestep (pure noise), which "leading" misses at low
    # step counts (Lin et al. 2023); identical schedule shape to the paper's otherwise.
    # clip_sample stays on (a cheap clamp) for loops that call step() themselves; `sample` clips anyway.
    return DDIMScheduler(**common, clip_sample=True, clip_sample_range=1.0, timestep_spacing="trailing")


def _dpmpp(common: dict, order: int, steps: int | None) -> Any:
    from diffusers import DPMSolverMultistepScheduler
    return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=order,
                                       lower_order_final=True)


def _sde(common: dict, order: int, steps: int | None) -> Any:
    from diffusers import DPMSolverMultistepScheduler
    # diffusers' SDE variant of DPM-Solver++ (Lu et al. 2022): each step adds fresh noise drawn from the render's
    # generator (the sampling loops pass it), so a seed still gives one clip.
    return DPMSolverMultistepScheduler(**common, algorithm_type="sde-dpmsolver++", solver_order=order,
                                       lower_order_final=True)


@dataclass(frozen=True)
class Sampler:
    """One sampler. `orders`: the multistep orders it runs (first order only: no step history); `jumps`: whether
    masked sampling may re-step a timestep (RePaint-style resampling jumps need a stateless first-order step);
    `from_noise`: the (timestep spacing, order) it runs from pure noise, `partial` the same from a noised start."""
    name: str
    summary: str
    orders: tuple[int, ...]
    jumps: bool
    from_noise: tuple[str, int]
    partial: tuple[str, int]
    build: Callable[[dict, int, int | None], Any]

    def solver(self, from_noise: bool) -> tuple[str, int]:
        """(spacing, order) this sampler runs with, from pure noise or from a noised start."""
        return self.from_noise if from_noise else self.partial


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    # The paper's: 200 steps, eta 0, linear steps. First order, so a step can be undone (resampling jumps).
    Sampler("ddim", "the paper's DDIM (eta 0)", orders=(1,), jumps=True, from_noise=("linear", 1),
            partial=("linear", 1), build=_ddim),
    # DPM-Solver++ multistep. From pure noise third order on log-SNR steps: at 15 steps its clips match DDIM 200's
    # loudness, onsets and phase SC where 2M on linear steps lost 2-3 dB (bench/RESULTS.md). Partial starts keep
    # linear steps (strength s starts near t = s * T) and second order.
    Sampler("dpmpp", "DPM-Solver++ multistep (fast, the default)", orders=(1, 2, 3), jumps=False,
            from_noise=("logsnr", 3), partial=("linear", 2), build=_dpmpp),
    # Its stochastic (SDE) form, second order (diffusers' SDE solver goes no higher). The fresh noise of each step
    # washes out the small model's texture errors: on the piano candidate sustained notes hold where the ODE
    # solvers leave speckled harmonics (mel change 0.34 -> 0.27-0.29, real 0.31), and with beat guidance the beat
    # comes through (bench/RESULTS.md, "Stochastic sampling"). From noise on log-SNR steps from a floor
    # (engine.sampling.LOGSNR_FLOOR): 12 such steps measured as 15 plain log-SNR ones, 3 U-Net calls fewer.
    Sampler("sde", "DPM-Solver++ SDE (stochastic: smoother sustained notes)", orders=(1, 2), jumps=False,
            from_noise=("logsnr_floor", 2), partial=("linear", 2), build=_sde),
)}
SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)  # ("ddim", "dpmpp", "sde"): argparse and OSC choices, in this order
DEFAULT_SAMPLER = "dpmpp"
JUMP_SAMPLER = "ddim"  # what a request for resampling jumps without a sampler gets


def get_sampler(name: str) -> Sampler:
    """The registered sampler `name`; UnknownSampler names the choices."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise UnknownSampler(f"unknown sampler {name!r}: use {' or '.join(SAMPLER_NAMES)}") from None
