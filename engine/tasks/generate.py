"""Unconditional generation (paper section 3.3): noise -> sampler -> vocoder -> phase -> audio.

`generate(engine, seconds, seed=...)` renders one clip; `generate_batch` several of one length as one batch.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from engine.bundle import GL_INITS
from engine.finite import check_output
from engine.limits import UNBOUNDED, Limits
from engine.render import PHASE_METHODS, Progress, RenderError, RenderResult, clip_length, max_clip_seconds
from engine.sampling import make_scheduler, sample, solver_settings
from engine.tasks.finish import task_info
from engine.tasks.settings import LIMITS, SAMPLING, TEMPO, resolve_render
from engine.tasks.task import REQUIRED, Param, Task

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.regions import Tempo

# Relative cost of one U-Net call vs one phase iteration, for the progress fraction only.
_STEP_WEIGHT, _PHASE_WEIGHT = 2.0, 1.0


def generate(engine: "Engine", seconds: float, seed: int | None = None, steps: int | None = None,
             sampler: str | None = None, gl_iters: int | None = None,
             callback: Callable[[float], None] | None = None, phase: str = "fast", gl_init: str | None = None,
             progress: bool = False, limits: Limits | None = None, tempo: "Tempo | None" = None) -> RenderResult:
    """Unconditional music of `seconds` (exact: round(seconds * sample_rate) samples). Defaults come from
    the bundle's manifest. `callback(fraction)` after each sampler step and phase iteration. `tempo`: the tempo a
    beat-conditioned bundle follows (engine.regions.Tempo; None: one drawn by the seed from the training pieces'
    tempos where the bundle records them, else its default BPM in 4/4; Engine.default_tempo). The clip's info
    names the tempo ("bpm", "time_signature", "tempo_drawn")."""
    return generate_batch(engine, seconds, [seed], steps=steps, sampler=sampler, gl_iters=gl_iters,
                          callback=callback, phase=phase, gl_init=gl_init, progress=progress, limits=limits,
                          tempo=tempo)[0]


def generate_batch(engine: "Engine", seconds: float, seeds: Sequence[int | None], steps: int | None = None,
                   sampler: str | None = None, gl_iters: int | None = None,
                   callback: Callable[[float], None] | None = None, phase: str = "fast",
                   gl_init: str | None = None, progress: bool = False, limits: Limits | None = None,
                   tempo: "Tempo | None" = None) -> list[RenderResult]:
    """One clip per seed, all of `seconds` and the same settings: the sampler runs them as one batch (one U-Net call
    per step for all clips), then each clip is decoded on its own. Each clip is the one `generate` gives for its
    seed (noise is drawn per seed; the U-Net treats batch rows independently). `callback(fraction)` covers the
    whole batch. `limits`: the job's bounds (checked after the model's own, whose reason says more)."""
    if not seeds:
        raise RenderError("seeds must name at least one clip")
    length = clip_length(seconds, engine.bundle)
    (limits or UNBOUNDED).check_render(float(seconds), "this generate")
    settings = resolve_render(engine, steps, sampler, gl_iters, phase, gl_init)
    bundle = engine.bundle
    drawn = [engine.generator_for(seed) for seed in seeds]
    count = len(drawn)
    tracker = Progress(callback, {"sampling": _STEP_WEIGHT * settings["steps"],
                                  "phase": _PHASE_WEIGHT * settings["gl_iters"] * count})

    start = begun = time.perf_counter()
    # Drawn on the CPU (one seed, one clip, on every device), then moved to where the engine samples.
    shape = (bundle.channels, bundle.spectrogram.n_mels, length.model_frames)
    noise = torch.stack([torch.randn(shape, generator=generator) for _, generator in drawn])
    noise = noise.to(engine.tensor_device)
    spacing, order = solver_settings(settings["sampler"], from_noise=True)
    scheduler = make_scheduler(settings["sampler"], **bundle.diffusion.to_dict(), order=order,
                               steps=settings["steps"])
    # No tempo asked: each clip follows one drawn by its seed (Engine.default_tempo), so a batch is the clips its
    # seeds give alone.
    tempos = [tempo] * count if tempo is not None else [engine.default_tempo(seed) for seed, _ in drawn]
    denoise, _ = engine.denoiser_with_beat(None if tempos[0] is None else tempos)
    x = sample(denoise, noise * scheduler.init_noise_sigma, scheduler, settings["steps"], spacing=spacing,
               callback=lambda s: tracker.update("sampling", _STEP_WEIGHT * (s["i"] + 1)), disable=not progress,
               generator=[generator for _, generator in drawn] if count > 1 else drawn[0][1])
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
                               {"sampling_s": sampling_s, "decode_s": decode_s, "batch": count,
                                **_tempo_info(tempos[i] if bundle.beat else None, drawn_tempo=tempo is None)},
                               begun))
    return results


def _tempo_info(tempo: "Tempo | None", drawn_tempo: bool) -> dict:
    """What a clip's info says of the tempo it follows (None: none, a bundle without beat conditioning)."""
    if tempo is None:
        return {"bpm": None}
    return {"bpm": tempo.bpm, "time_signature": f"{tempo.numerator}/{tempo.denominator}", "tempo_drawn": drawn_tempo}


def _result(engine: "Engine", seconds: float, length, seed: int, settings: dict, spacing: str, order: int,
            audio: torch.Tensor, magnitude: torch.Tensor, timings: dict, started: float) -> RenderResult:
    from engine.dsp.phase import spectral_convergence
    bundle = engine.bundle
    audio_np = audio.cpu().numpy().astype(np.float32, copy=False)
    check_output(audio_np)
    info = task_info(engine, "generate", seed, started, {
        "seconds_requested": float(seconds), "seconds": length.samples / bundle.sample_rate,
        "samples": length.samples, "frames": length.frames, "model_frames": length.model_frames,
        **settings, "spacing": spacing, "order": order,
        "spectral_convergence": spectral_convergence(audio, magnitude, bundle.spectrogram),
        "peak": float(np.abs(audio_np).max(initial=0.0)), "backend": engine.backend, **timings})
    return RenderResult(audio=audio_np, sample_rate=bundle.sample_rate, info=info)


TASK = Task(
    "generate", "generate new music from noise", generate,
    params=(Param("seconds", "float", REQUIRED, "length in seconds (any positive number)"), *SAMPLING,
            Param("phase", "str", "fast", "fast Griffin-Lim, stereo-linked (default); independent (per channel); "
                  "torchaudio (the paper's)", PHASE_METHODS),
            Param("gl_init", "str", None, "Griffin-Lim's initial phase (default: the bundle's)", GL_INITS),
            Param("progress", "object", False, "show a progress bar on stderr"), *TEMPO, *LIMITS),
    description="Generate unconditional music with a bundle's model.",
    batch_function=generate_batch, max_seconds=lambda engine: max_clip_seconds(engine.bundle))
