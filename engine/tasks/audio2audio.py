"""Audio-to-audio / style transfer (paper section 5.2): noise the input's mel to `strength`, denoise it back.

strength 0..1 is the fraction of the noise schedule: low keeps the input's structure and changes its sound, high
keeps little but the rhythm. Whole file by default, or only `regions` (the rest of the file untouched, with the
model seeing it as context). Griffin-Lim starts from the input's own phase, which keeps transients in place.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from engine.audio_io import NativeAudio, check_output_path, float_to_samples, output_layout
from engine.boundary import seam_report
from engine.editing import (CONTEXT_SECONDS, FADE_SECONDS, SpanRender, edit_regions, from_model, load_source,
                            render_spans, to_model)
from engine.finite import check_output
from engine.limits import UNBOUNDED, Limits
from engine.masked_sampling import count_unet_calls
from engine.regions import RegionError, RegionLike, SampleRegion, Tempo, as_regions, rendered_seconds, resolve_regions
from engine.render import Progress
from engine.tasks.finish import EditResult, finish_edit, masked_settings
from engine.tasks.settings import LAYOUT, LIMITS, OUTPUT, SAMPLING, TEMPO, masked_config, resolve_gl_iters
from engine.tasks.task import REQUIRED, Param, Task

CHUNK_SECONDS = 60.0  # whole files longer than one render are re-rendered in chunks of this length
CHUNK_CONTEXT_SECONDS = 8.0  # of the previous chunk's new audio, known while rendering the next
LOOKAHEAD_SECONDS = 0.5

if TYPE_CHECKING:
    from engine.api import Engine


def audio2audio(engine: "Engine", source: str | Path | NativeAudio, strength: float, *,
                regions: Sequence[RegionLike] | None = None, tempo: Tempo | None = None, seed: int | None = None,
                steps: int | None = None, sampler: str | None = None, jumps: int | None = None,
                gl_iters: int | None = None, fade_ms: float = FADE_SECONDS * 1000,
                callback: Callable[[float], None] | None = None, output: str | Path | None = None,
                overwrite: bool = False, format: str | None = None, bit_depth: int | str | None = None,
                chunk_seconds: float | None = None, limits: Limits | None = None) -> EditResult:
    """Re-render `source` (or its `regions`) from its mel noised to `strength` (0 < strength <= 1).

    A whole file longer than one render (or any whole file, with `chunk_seconds`) is done in chunks, left to
    right: each chunk starts from its own original audio and sees the end of the previous, already re-rendered
    chunk as known context, so the chunks join without a seam."""
    try:
        strength = float(strength)
    except (TypeError, ValueError):
        raise RegionError(f"strength must be a number between 0 and 1, got {strength!r}") from None
    if not 0.0 < strength <= 1.0:
        raise RegionError(f"strength must be in (0, 1] (0 would return the input unchanged), got {strength}")
    src = load_source(source, limits)
    if output is not None:
        check_output_path(output, overwrite)
    if regions:
        resolved = resolve_regions(as_regions(regions), src.frames, src.sample_rate, tempo)
    else:
        resolved = [SampleRegion(0, src.frames)]
    (limits or UNBOUNDED).check_render(rendered_seconds(resolved, src.sample_rate), "this audio2audio")
    config = masked_config(engine, steps, sampler, "replace", jumps, strength)
    iters = resolve_gl_iters(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    start = time.perf_counter()
    if not regions and (chunk_seconds is not None or src.seconds > engine.max_seconds - 1.0):
        chunk = min(chunk_seconds or CHUNK_SECONDS, engine.max_seconds - CHUNK_CONTEXT_SECONDS - 1.0)
        if chunk <= 0.5:
            raise RegionError(f"chunk_seconds must be more than 0.5 s, got {chunk_seconds}")
        samples, info = _chunked(engine, src, config, generator, iters, callback, chunk, subtype, tempo)
    else:
        samples, info = edit_regions(engine, src, resolved, config, generator, iters, callback,
                                     fade_s=fade_ms / 1000, context_s=CONTEXT_SECONDS, phase_init="original",
                                     output_format=fmt, output_subtype=subtype, tempo=tempo)
    info.update({"strength": strength, **masked_settings(config, iters), "seconds": src.seconds,
                 "whole_file": not regions, "input": str(src.path) if src.path else None, "format": fmt,
                 "input_sample_rate": src.sample_rate})
    return finish_edit(engine, "audio2audio", seed, start, samples, src.sample_rate, fmt, subtype, info, output,
                       overwrite)


def _chunked(engine: "Engine", src: NativeAudio, config, generator, iters: int,
             callback: Callable[[float], None] | None, chunk_s: float, subtype: str,
             tempo: "Tempo | None" = None) -> tuple[np.ndarray, dict]:
    """Whole-file audio-to-audio in chunks at the model rate; returns native samples and info."""
    model_rate = engine.sample_rate
    original = to_model(src.to_float(), src.sample_rate, engine)
    n = original.shape[-1]
    chunk, context = int(chunk_s * model_rate), int(CHUNK_CONTEXT_SECONDS * model_rate)
    starts = list(range(0, n, chunk))
    calls = count_unet_calls(config)
    tracker = Progress(callback, {"sampling": 2.0 * calls * len(starts), "phase": 1.0 * iters * len(starts)})
    out = original.clone()
    report = SpanRender()
    for k, s in enumerate(starts):
        # render a little past the chunk: the last samples of a Griffin-Lim output are unreliable (few frames
        # overlap them); the next chunk overwrites the look-ahead and holds only good samples as its context
        e, a = min(n, s + chunk + int(LOOKAHEAD_SECONDS * model_rate)), max(0, s - context)
        # the previous chunk's new audio as context, this chunk's original as the starting point
        window = torch.cat([out[:, a:s], original[:, s:e]], -1)
        new = render_spans(engine, window, [(s - a, e - a)], config, generator, iters,
                           on_call=lambda f, k=k: tracker.update("sampling", 2.0 * calls * (k + f)),
                           on_phase=lambda i, k=k: tracker.update("phase", float(iters * k + i + 1)),
                           phase_init="original", report=report, tempo=tempo, offset_s=a / model_rate)
        out[:, s:e] = new[:, s - a:]
    tracker.update("phase", float(iters * len(starts)))
    audio = from_model(out, engine, src.sample_rate, src.channels, src.frames)
    check_output(audio)  # before the clip, which would turn an infinity into a full-scale sample
    samples = float_to_samples(np.clip(audio, -1.0, 1.0).T, subtype, dither=True)
    joins = [round(s * src.sample_rate / model_rate) for s in starts[1:]]
    info = {"chunks": len(starts), "chunk_s": chunk_s, "unet_calls": report.unet_calls,
            "sampling_s": report.sampling_s, "phase_s": report.phase_s, "format": src.format, "subtype": subtype}
    if joins:
        info["boundary"] = seam_report(audio, joins, src.sample_rate, reference=audio)
    return samples, info


TASK = Task(
    "audio2audio", "re-render a file (or regions of it) in the model's style", audio2audio,
    params=(Param("source", "path", REQUIRED, "input audio file"),
            Param("strength", "float", REQUIRED, "0..1: how far from the input (e.g. 0.3-0.7)"),
            Param("regions", "object", None, "only these regions (START-END strings, pairs or Region)"),
            *TEMPO, *SAMPLING, Param("jumps", "sampling", None, "resampling passes per late step (ddim only)"),
            Param("fade_ms", "float", FADE_SECONDS * 1000, "crossfade inside region edges"), *OUTPUT, *LAYOUT,
            Param("chunk_seconds", "float", None, "re-render whole files in chunks of this length"), *LIMITS),
    description="Noise the input's mel to strength and denoise it back (paper 5.2). With regions only those "
                "change; the rest is written bit-identical.",
    edits_input=True)
