"""Inpainting (paper section 5.4): regenerate one or more regions of a file, everything else untouched.

Regions are seconds or bars/beats (engine.regions). The model sees up to CONTEXT_SECONDS of the real audio each
side of a region at every step (replacement sampling, engine.masked_sampling); RePaint (j=10, r=10, the
reference implementation's) stays selectable as `method="repaint"`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from engine.audio_io import NativeAudio, check_output_path, output_layout
from engine.editing import CONTEXT_SECONDS, FADE_SECONDS, edit_regions, load_source
from engine.limits import UNBOUNDED, Limits
from engine.regions import RegionLike, Tempo, as_regions, rendered_seconds, resolve_regions
from engine.render import RenderError
from engine.tasks.finish import EditResult, finish_edit, masked_settings
from engine.tasks.settings import LAYOUT, LIMITS, MASKED, OUTPUT, SAMPLING, TEMPO, masked_config, resolve_gl_iters
from engine.tasks.task import REQUIRED, Param, Task

if TYPE_CHECKING:
    from engine.api import Engine

PHASES = {"anchored": "context", "free": "free"}


def inpaint(engine: "Engine", source: str | Path | NativeAudio, regions: Sequence[RegionLike], *,
            tempo: Tempo | None = None, seed: int | None = None, steps: int | None = None,
            sampler: str | None = None, method: str = "replace", jumps: int | None = None,
            gl_iters: int | None = None, fade_ms: float = FADE_SECONDS * 1000,
            context_seconds: float = CONTEXT_SECONDS, phase: str = "anchored",
            callback: Callable[[float], None] | None = None,
            output: str | Path | None = None, overwrite: bool = False, format: str | None = None,
            bit_depth: int | str | None = None, limits: Limits | None = None) -> EditResult:
    """Regenerate `regions` of `source`. Returns the edited file's samples (input's rate and format unless
    `format`/`bit_depth` say otherwise) and writes them to `output` if given. Bad regions raise RegionError
    before anything is rendered or written. `phase` "anchored" (default) solves the new phase with the original
    held fixed, starting from its phase; "free" is the paper's decoding (random phase), kept as a baseline."""
    if phase not in PHASES:
        raise RenderError(f"unknown phase mode {phase!r}: use {' or '.join(PHASES)}")
    src = load_source(source, limits)
    if output is not None:
        check_output_path(output, overwrite)
    resolved = resolve_regions(as_regions(regions), src.frames, src.sample_rate, tempo)
    (limits or UNBOUNDED).check_render(rendered_seconds(resolved, src.sample_rate), "this inpaint")
    config = masked_config(engine, steps, sampler, method, jumps)
    iters = resolve_gl_iters(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    start = time.perf_counter()
    samples, info = edit_regions(engine, src, resolved, config, generator, iters, callback, fade_s=fade_ms / 1000,
                                 context_s=context_seconds, phase_init=PHASES[phase], output_format=fmt,
                                 output_subtype=subtype, tempo=tempo)
    info.update({"method": method, "phase": phase, **masked_settings(config, iters), "seconds": src.seconds,
                 "input": str(src.path) if src.path else None, "input_sample_rate": src.sample_rate})
    return finish_edit(engine, "inpaint", seed, start, samples, src.sample_rate, fmt, subtype, info, output,
                       overwrite)


TASK = Task(
    "inpaint", "regenerate regions of a file, the rest untouched", inpaint,
    params=(Param("source", "path", REQUIRED, "input audio file"),
            Param("regions", "object", REQUIRED, "START-END strings, (start, end) pairs or Region objects"),
            *TEMPO, *SAMPLING, *MASKED,
            Param("fade_ms", "float", FADE_SECONDS * 1000, "crossfade inside each region edge"),
            Param("context_seconds", "float", CONTEXT_SECONDS, "seconds of audio the model sees each side"),
            Param("phase", "str", "anchored", "anchored (default) or free (the paper's decoding)", tuple(PHASES)),
            *OUTPUT, *LAYOUT, *LIMITS),
    description="Regenerate regions of an audio file. Audio outside the regions is written bit-identical "
                "(same rate, format and bit depth as the input unless asked otherwise).",
    edits_input=True)
