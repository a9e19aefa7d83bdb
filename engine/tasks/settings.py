"""The render settings every task shares: their declarations (as task `Param`s) and their one check.

Unset settings come from the bundle's defaults (manifest.json -> defaults). Each check raises RenderError naming
the setting, so `msanii-render` prints it and the OSC server sends it as the fail reason.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.masked_sampling import METHODS, MaskedConfig
from engine.render import PHASE_METHODS, RenderError
from engine.samplers import DEFAULT_SAMPLER, JUMP_SAMPLER, SAMPLER_NAMES, UnknownSampler, get_sampler
from engine.tasks.task import Param

if TYPE_CHECKING:
    from engine.api import Engine

DEFAULT_JUMPS = 1  # resampling passes per late step when a first-order sampler is asked for
MAX_GL_ITERS = 10_000

SEED = Param("seed", "seed", None, "random seed (default: fresh; reported so a render can be repeated)")
SAMPLING = (SEED,
            Param("steps", "sampling", None, "sampler steps (default: the bundle's)"),
            Param("sampler", "sampling", None, "sampler (default: the bundle's)", SAMPLER_NAMES),
            Param("gl_iters", "sampling", None, "phase reconstruction iterations (default: the bundle's)"))
MASKED = (Param("method", "sampling", "replace", "masked sampling: replace (ours) or repaint (RePaint)", METHODS),
          Param("jumps", "sampling", None, f"resampling passes per late step (default {DEFAULT_JUMPS} with "
                                           f"{JUMP_SAMPLER})"))
LIMITS = (Param("limits", "limits", None, "engine.limits.Limits the request is held to (None: unbounded)"),)
TEMPO = (Param("tempo", "tempo", None, "engine.regions.Tempo for bar/beat positions and lengths"),)
LAYOUT = (Param("format", "layout", None, "output container (default: the input's)"),
          Param("bit_depth", "layout", None, "16, 24, 32 or 32f (default: the input's)"))
OUTPUT = (Param("output", "output", None, "write the result to this file too"),
          Param("overwrite", "output", False, "replace `output` if it exists"))


def resolve_sampler(sampler: str | None, default: str) -> str:
    try:
        return get_sampler(sampler or default).name
    except UnknownSampler as exc:
        raise RenderError(str(exc)) from None


def resolve_steps(engine: "Engine", steps: int | None) -> int:
    steps = engine.defaults.steps if steps is None else steps
    most = engine.bundle.diffusion.num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= most:
        raise RenderError(f"steps must be an integer from 1 to {most}, got {steps!r}")
    return steps


def resolve_gl_iters(engine: "Engine", gl_iters: int | None) -> int:
    gl_iters = engine.defaults.gl_iters if gl_iters is None else gl_iters
    if isinstance(gl_iters, bool) or not isinstance(gl_iters, int) or not 0 <= gl_iters <= MAX_GL_ITERS:
        raise RenderError(f"gl_iters must be an integer from 0 to {MAX_GL_ITERS}, got {gl_iters!r}")
    return gl_iters


def resolve_render(engine: "Engine", steps: int | None, sampler: str | None, gl_iters: int | None,
                   phase: str, gl_init: str | None) -> dict:
    """Generation's settings, unset ones from the bundle's defaults (the sampler too)."""
    if phase not in PHASE_METHODS:
        raise RenderError(f"unknown phase method {phase!r}: use {' or '.join(PHASE_METHODS)}")
    sampler = resolve_sampler(sampler, engine.defaults.sampler)
    return {"sampler": sampler, "steps": resolve_steps(engine, steps), "gl_iters": resolve_gl_iters(engine, gl_iters),
            "phase": phase, "gl_init": gl_init or engine.defaults.gl_init}


def masked_config(engine: "Engine", steps: int | None, sampler: str | None, method: str, jumps: int | None,
                  strength: float = 1.0, circular: bool = False) -> MaskedConfig:
    """Settings for masked sampling with the bundle's step count by default. The sampler defaults to DPM-Solver++
    (from noise: 3M on log-SNR steps; partial strengths: 2M on linear steps; engine.samplers): against DDIM with a
    resampling jump it measured closer to the original's level (inpaint -3.5 vs -11.2 dB, outpaint -0.5 vs -7.1,
    audio-to-audio at 0.6 -1.5 vs -3.7), chroma and log-mel, with seams in the same range, at fewer U-Net calls
    (bench/RESULTS.md). Asking for jumps (or for DDIM) gives DDIM, with 1 jump by default."""
    name = resolve_sampler(sampler, JUMP_SAMPLER if jumps else DEFAULT_SAMPLER)
    if method not in METHODS:
        raise RenderError(f"unknown inpainting method {method!r}: use {' or '.join(METHODS)}")
    steps = resolve_steps(engine, steps)
    can_jump = get_sampler(name).jumps
    if jumps is None:
        jumps = DEFAULT_JUMPS if can_jump else 0
    if jumps and not can_jump:
        raise RenderError(f"resampling jumps need --sampler {JUMP_SAMPLER} ({name} keeps a history of steps)")
    if not 0.0 < strength <= 1.0:
        raise RenderError(f"strength must be in (0, 1], got {strength}")
    return MaskedConfig(steps=steps, strength=strength, jumps=jumps, method=method, sampler=name, circular=circular)
