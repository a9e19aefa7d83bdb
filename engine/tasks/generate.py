"""Unconditional generation (paper section 3.3): noise -> sampler -> vocoder -> phase -> audio.

Also registers `msanii-render generate`.
"""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from engine.finite import check_output
from engine.render import PHASE_METHODS, Progress, RenderError, RenderResult, clip_length
from engine.samplers import SAMPLER_NAMES as SAMPLERS
from engine.sampling import make_scheduler, sample, solver_settings

if TYPE_CHECKING:
    from engine.api import Engine

# Relative cost of one U-Net call vs one phase iteration, for the progress fraction only.
_STEP_WEIGHT, _PHASE_WEIGHT = 2.0, 1.0


def resolve_settings(engine: "Engine", steps: int | None, sampler: str | None, gl_iters: int | None,
                     phase: str, gl_init: str | None) -> dict:
    """Fill unset render settings from the bundle's defaults and check them (RenderError names the bad one)."""
    d = engine.defaults
    sampler = sampler or d.sampler
    if sampler not in SAMPLERS:
        raise RenderError(f"unknown sampler {sampler!r}: use {' or '.join(SAMPLERS)}")
    steps = d.steps if steps is None else steps
    most = engine.bundle.diffusion.num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= most:
        raise RenderError(f"steps must be an integer from 1 to {most}, got {steps!r}")
    gl_iters = d.gl_iters if gl_iters is None else gl_iters
    if isinstance(gl_iters, bool) or not isinstance(gl_iters, int) or not 0 <= gl_iters <= 10_000:
        raise RenderError(f"gl_iters must be an integer from 0 to 10000, got {gl_iters!r}")
    if phase not in PHASE_METHODS:
        raise RenderError(f"unknown phase method {phase!r}: use {' or '.join(PHASE_METHODS)}")
    gl_init = gl_init or d.gl_init
    return {"sampler": sampler, "steps": steps, "gl_iters": gl_iters, "phase": phase, "gl_init": gl_init}


def generate(engine: "Engine", seconds: float, seed: int | None = None, steps: int | None = None,
             sampler: str | None = None, gl_iters: int | None = None,
             callback: Callable[[float], None] | None = None, phase: str = "fast", gl_init: str | None = None,
             progress: bool = False) -> RenderResult:
    return generate_batch(engine, seconds, [seed], steps=steps, sampler=sampler, gl_iters=gl_iters,
                          callback=callback, phase=phase, gl_init=gl_init, progress=progress)[0]


def generate_batch(engine: "Engine", seconds: float, seeds: Sequence[int | None], steps: int | None = None,
                   sampler: str | None = None, gl_iters: int | None = None,
                   callback: Callable[[float], None] | None = None, phase: str = "fast",
                   gl_init: str | None = None, progress: bool = False) -> list[RenderResult]:
    """One clip per seed, all of `seconds` and the same settings: the sampler runs them as one batch (one U-Net call
    per step for all clips), then each clip is decoded on its own. Each clip is the one `generate` gives for its
    seed (noise is drawn per seed; the U-Net treats batch rows independently). `callback(fraction)` covers the
    whole batch."""
    if not seeds:
        raise RenderError("seeds must name at least one clip")
    length = clip_length(seconds, engine.bundle)
    settings = resolve_settings(engine, steps, sampler, gl_iters, phase, gl_init)
    bundle = engine.bundle
    drawn = [engine.generator_for(seed) for seed in seeds]
    count = len(drawn)
    tracker = Progress(callback, {"sampling": _STEP_WEIGHT * settings["steps"],
                                  "phase": _PHASE_WEIGHT * settings["gl_iters"] * count})

    start = time.perf_counter()
    # Drawn on the CPU (one seed, one clip, on every device), then moved to where the engine samples.
    shape = (bundle.channels, bundle.spectrogram.n_mels, length.model_frames)
    noise = torch.stack([torch.randn(shape, generator=generator) for _, generator in drawn])
    noise = noise.to(engine.tensor_device)
    spacing, order = solver_settings(settings["sampler"], from_noise=True)
    scheduler = make_scheduler(settings["sampler"], **bundle.diffusion.to_dict(), order=order,
                               steps=settings["steps"])
    x = sample(engine.denoiser, noise * scheduler.init_noise_sigma, scheduler, settings["steps"], spacing=spacing,
               callback=lambda s: tracker.update("sampling", _STEP_WEIGHT * (s["i"] + 1)), disable=not progress,
               generator=drawn[0][1])
    sampling_s = time.perf_counter() - start

    results = []
    for i, (seed, generator) in enumerate(drawn):
        done = _PHASE_WEIGHT * settings["gl_iters"] * i
        start = time.perf_counter()
        audio, magnitude = engine.decode(
            x[i], length.samples, phase=settings["phase"], gl_iters=settings["gl_iters"],
            gl_init=settings["gl_init"], generator=generator,
            callback=lambda it, done=done: tracker.update("phase", done + _PHASE_WEIGHT * (it + 1)))
        decode_s = time.perf_counter() - start
        tracker.update("phase", done + _PHASE_WEIGHT * settings["gl_iters"])
        results.append(_result(engine, seconds, length, seed, settings, spacing, order, audio, magnitude,
                               {"sampling_s": sampling_s, "decode_s": decode_s, "batch": count}))
    return results


def _result(engine: "Engine", seconds: float, length, seed: int, settings: dict, spacing: str, order: int,
            audio: torch.Tensor, magnitude: torch.Tensor, timings: dict) -> RenderResult:
    from engine.dsp.phase import spectral_convergence
    bundle = engine.bundle
    audio_np = audio.cpu().numpy().astype(np.float32, copy=False)
    check_output(audio_np)
    info = {"task": "generate", "seconds_requested": float(seconds), "seconds": length.samples / bundle.sample_rate,
            "samples": length.samples, "frames": length.frames, "model_frames": length.model_frames, "seed": seed,
            **settings, "spacing": spacing, "order": order,
            "spectral_convergence": spectral_convergence(audio, magnitude, bundle.spectrogram),
            "peak": float(np.abs(audio_np).max(initial=0.0)), "device": engine.device, "backend": engine.backend,
            "bundle": bundle.name, **timings}
    return RenderResult(audio=audio_np, sample_rate=bundle.sample_rate, info=info)


# ---------------------------------------------------------------------------------------------- CLI

def register_cli(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("generate", parents=[common], help="generate new music from noise",
                              description="Generate unconditional music with a bundle's model.")
    p.add_argument("--seconds", type=float, required=True, help="length in seconds (any positive number)")
    p.add_argument("--seed", type=int, help="random seed (default: fresh; printed so you can repeat a render)")
    p.add_argument("--steps", type=int,
                   help="sampler steps (default: the bundle's, 15 for the shipped model; paper DDIM: 200)")
    p.add_argument("--sampler", choices=SAMPLERS, help="dpmpp (fast, default) or ddim (the paper's)")
    p.add_argument("--gl-iters", type=int, help="phase reconstruction iterations (default: the bundle's)")
    p.add_argument("--phase", choices=PHASE_METHODS, default="fast",
                   help="fast Griffin-Lim (default) or torchaudio's (the paper's)")
    p.set_defaults(run=run_cli)


def run_cli(engine: "Engine", args: argparse.Namespace, callback: Callable[[float], None]) -> RenderResult:
    from engine.tasks.cli_support import limits_from
    clip_length(args.seconds, engine.bundle)  # the model's own limit first: its reason says more
    limits_from(args).check_render(args.seconds, "this generate")
    return engine.generate(args.seconds, seed=args.seed, steps=args.steps, sampler=args.sampler,
                           gl_iters=args.gl_iters, phase=args.phase, callback=callback)
