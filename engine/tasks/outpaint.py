"""Outpainting (paper section 5.5): extend a file to the left and/or right by any length.

Long extensions are generated in sliding windows: each window holds `context_seconds` of the audio it continues
(the original's end, then the previously generated audio) followed by `chunk_seconds` of new audio, and is rendered
with the context known at every step (engine.editing.render_spans), so window k+1 is conditioned on the end
of window k and a 30 s clip can become a 190 s one. The input's samples are written unchanged between the
extensions; the join is continuous because the generated phase is solved with the original samples held fixed,
and a residual offset at the seam is faded out inside the new audio.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from engine.audio_io import NativeAudio, check_output_path, float_to_samples, output_layout, samples_to_float
from engine.boundary import seam_report
from engine.dsp.crossfade import equal_power_curves, fade_edge
from engine.editing import FADE_SECONDS, SpanRender, from_model, load_source, render_spans, to_model
from engine.limits import UNBOUNDED, Limits
from engine.masked_sampling import MaskedConfig, count_unet_calls
from engine.regions import Length, RegionError, Tempo, length_seconds, to_samples
from engine.render import Progress
from engine.tasks.finish import EditResult, finish_edit, masked_settings
from engine.tasks.settings import LAYOUT, LIMITS, MASKED, OUTPUT, SAMPLING, TEMPO, masked_config, resolve_gl_iters
from engine.tasks.task import REQUIRED, Param, Task

if TYPE_CHECKING:
    from engine.api import Engine

CONTEXT_SECONDS = 10.0
CHUNK_SECONDS = 12.0
MAX_EXTENSION_SECONDS = 1800.0
LOOKAHEAD_SECONDS = 0.5


def _aligned_context(rate: int, model_rate: int, seconds: float, available: int) -> int:
    """Context length in input samples that is a whole number of model-rate samples too (exact alignment)."""
    unit = rate // math.gcd(rate, model_rate)
    n = min(int(seconds * rate), available) // unit * unit
    return n if n > 0 else min(available, int(seconds * rate))


def extend(engine: "Engine", context: torch.Tensor, new_samples: int, side: str, config: MaskedConfig,
           generator: torch.Generator, gl_iters: int, context_samples: int, chunk_samples: int,
           on_window: Callable[[int, str, float], None], report: SpanRender, tempo: Tempo | None = None,
           context_start_s: float = 0.0) -> torch.Tensor:
    """Model-rate audio [C, new_samples] continuing `context` [C, n] to the right (side "right") or leading into
    it from the left ("left"), window by window. `tempo`: the input's, which a beat-conditioned bundle follows
    into the new audio; `context_start_s`: where `context` starts in the input (the grid's file time; audio
    before the input's start has negative times)."""
    pieces: list[torch.Tensor] = []
    done, window = 0, 0
    known = context
    known_start_s = context_start_s  # file time of known's first sample
    rate = engine.sample_rate
    lookahead = int(LOOKAHEAD_SECONDS * engine.sample_rate)
    while done < new_samples:
        chunk = min(chunk_samples, new_samples - done)
        chunk = max(chunk, engine.bundle.spectrogram.hop_length * 4)  # never a sliver of a window
        ctx = known[:, -context_samples:] if side == "right" else known[:, :context_samples]
        # generate a look-ahead past the chunk and drop it: a Griffin-Lim output's outermost samples are
        # unreliable (few frames overlap them) and must not become the next window's held context
        zeros = torch.zeros(ctx.shape[0], chunk + lookahead)
        if side == "right":
            audio, spans = torch.cat([ctx, zeros], -1), [(ctx.shape[-1], ctx.shape[-1] + chunk + lookahead)]
            window_start_s = known_start_s + (known.shape[-1] - ctx.shape[-1]) / rate
        else:
            audio, spans = torch.cat([zeros, ctx], -1), [(0, chunk + lookahead)]
            window_start_s = known_start_s - (chunk + lookahead) / rate
        out = render_spans(engine, audio, spans, config, generator, gl_iters,
                           on_call=lambda f, w=window: on_window(w, "sampling", f),
                           on_phase=lambda i, w=window: on_window(w, "phase", i + 1), report=report,
                           tempo=tempo, offset_s=window_start_s)
        new = out[:, spans[0][0]:spans[0][0] + chunk] if side == "right" else out[:, lookahead:lookahead + chunk]
        pieces.append(new)
        if side == "right":
            known = torch.cat([known, new], -1)
        else:
            known, known_start_s = torch.cat([new, known], -1), known_start_s - new.shape[-1] / rate
        done += chunk
        window += 1
    if side == "right":
        return torch.cat(pieces, -1)[:, :new_samples]
    return torch.cat(pieces[::-1], -1)[:, -new_samples:]


def _match_step(new: np.ndarray, target: np.ndarray, current: np.ndarray, fade: int, at_start: bool) -> np.ndarray:
    """Add the offset (target - current) [C] to `new` [C, n] at its seam end, fading it to zero over `fade`
    samples inside the new audio (a raised-cosine fade: no step, no slope jump)."""
    fade = min(fade, new.shape[-1])
    _, fade_out = equal_power_curves(fade)
    curve = fade_out ** 2
    out = new.copy()
    offset = (target - current)[:, None]
    if at_start:
        out[:, :fade] += offset * curve
    else:
        out[:, -fade:] += offset * curve[::-1]
    return out


@dataclass
class _Plan:
    """One outpaint's settings and sizes, fixed before any rendering."""
    config: MaskedConfig
    gl_iters: int
    generator: torch.Generator
    rate: int  # the input's
    model_rate: int
    new_samples: dict  # side -> input-rate samples to add
    chunk_model_samples: int
    context_seconds: float
    fade: int  # input-rate samples of the seam-step fade
    windows: dict  # side -> windows it is rendered in
    tempo: Tempo | None  # the input's (bar 1 at tempo.origin_s of the input), followed into the new audio


def outpaint(engine: "Engine", source: str | Path | NativeAudio, left: Length = 0.0, right: Length = 0.0, *,
             tempo: Tempo | None = None, seed: int | None = None, steps: int | None = None,
             sampler: str | None = None, method: str = "replace", jumps: int | None = None,
             gl_iters: int | None = None, context_seconds: float = CONTEXT_SECONDS,
             chunk_seconds: float = CHUNK_SECONDS, edge_fade_ms: float = FADE_SECONDS * 1000,
             callback: Callable[[float], None] | None = None, output: str | Path | None = None,
             overwrite: bool = False, format: str | None = None, bit_depth: int | str | None = None,
             limits: Limits | None = None) -> EditResult:
    """Extend `source` by `left` and `right` (seconds, or BarsLength with a tempo). The input's samples appear
    unchanged between the extensions; the new audio is at the input's rate and bit depth. A beat-conditioned
    bundle follows `tempo` (bar 1 at its origin_s of the input) into both extensions; without one, no grid."""
    left_s, right_s = length_seconds(left, tempo), length_seconds(right, tempo)
    if left_s <= 0 and right_s <= 0:
        raise RegionError("nothing to outpaint: both the left and the right extension are 0")
    (limits or UNBOUNDED).check_render(left_s + right_s, "this outpaint")
    src = load_source(source, limits)
    if output is not None:
        check_output_path(output, overwrite)
    if max(left_s, right_s) > MAX_EXTENSION_SECONDS:
        raise RegionError(f"an extension may be at most {MAX_EXTENSION_SECONDS:.0f} s")
    if context_seconds <= 0 or chunk_seconds < 1.0:
        raise RegionError("context must be > 0 s and chunks at least 1 s")
    config = masked_config(engine, steps, sampler, method, jumps)
    iters = resolve_gl_iters(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    rate, model_rate = src.sample_rate, engine.sample_rate
    new_samples = {"left": to_samples(left_s, rate), "right": to_samples(right_s, rate)}
    chunk_m = int(chunk_seconds * model_rate)
    plan = _Plan(config, iters, generator, rate, model_rate, new_samples, chunk_m, context_seconds,
                 int(round(edge_fade_ms / 1000 * rate)),
                 {side: -(-math.ceil(n * model_rate / rate) // chunk_m) if n else 0 for side, n in new_samples.items()},
                 tempo)

    start = time.perf_counter()
    report = SpanRender()
    parts = _extensions(engine, src, plan, callback, report)
    middle = src.samples if subtype == src.subtype else float_to_samples(src.to_float().T, subtype, dither=True)
    blocks = [float_to_samples(parts["left"].T, subtype, dither=True)] if "left" in parts else []
    blocks += [middle] + ([float_to_samples(parts["right"].T, subtype, dither=True)] if "right" in parts else [])
    samples = np.concatenate(blocks, axis=0)
    ext = plan.new_samples
    seams = ([ext["left"]] if ext["left"] else []) + ([ext["left"] + src.frames] if ext["right"] else [])
    info = {"left_s": ext["left"] / rate, "right_s": ext["right"] / rate,
            "input_seconds": src.seconds, "seconds": samples.shape[0] / rate, "windows": sum(plan.windows.values()),
            "context_s": context_seconds, "chunk_s": chunk_seconds, "unet_calls": report.unet_calls,
            "bpm": tempo.bpm if tempo is not None and engine.bundle.beat is not None else None,
            "sampling_s": report.sampling_s, "phase_s": report.phase_s, "method": method,
            **masked_settings(config, iters), "format": fmt, "subtype": subtype,
            "input": str(src.path) if src.path else None, "input_sample_rate": rate,
            "original_at_samples": [ext["left"], ext["left"] + src.frames],
            "bit_identical_inside": subtype == src.subtype,
            "boundary": seam_report(samples_to_float(samples).T, seams, rate,
                                    reference=[src.to_float()] + list(parts.values()))}
    return finish_edit(engine, "outpaint", seed, start, samples, rate, fmt, subtype, info, output, overwrite)


def _extensions(engine: "Engine", src: NativeAudio, plan: _Plan, callback: Callable[[float], None] | None,
                report: SpanRender) -> dict[str, np.ndarray]:
    """The new audio of each side with an extension, float [C, n] at the input rate, seams matched and faded."""
    n_windows = sum(plan.windows.values())
    calls_each = count_unet_calls(plan.config)
    iters = plan.gl_iters
    tracker = Progress(callback, {"sampling": 2.0 * calls_each * n_windows, "phase": 1.0 * iters * n_windows})
    finished = {"count": 0}

    def on_window(w: int, stage: str, amount: float) -> None:
        base = finished["count"] + w
        tracker.update(stage, 2.0 * calls_each * (base + amount) if stage == "sampling" else iters * base + amount)

    parts: dict[str, np.ndarray] = {}
    for side in ("left", "right"):
        if plan.new_samples[side]:
            parts[side] = _extend_side(engine, src, plan, side, on_window, report)
            finished["count"] += plan.windows[side]
    tracker.update("phase", float(iters * n_windows))
    return parts


def _extend_side(engine: "Engine", src: NativeAudio, plan: _Plan, side: str,
                 on_window: Callable[[int, str, float], None], report: SpanRender) -> np.ndarray:
    """One side's extension at the input rate, continuous with the input's own samples at the seam."""
    rate, model_rate, wanted = plan.rate, plan.model_rate, plan.new_samples[side]
    n_ctx = _aligned_context(rate, model_rate, plan.context_seconds, src.frames)
    ctx_i = src.to_float(src.frames - n_ctx, None) if side == "right" else src.to_float(0, n_ctx)
    ctx_m = to_model(ctx_i, rate, engine)
    # new audio at the model rate: a little spare for the resampler's edge, and a whole number of samples
    # at both rates so the context stays sample-aligned after resampling
    g = math.gcd(rate, model_rate)
    unit_m, unit_i = model_rate // g, rate // g
    new_m_len = -(-(math.ceil(wanted * model_rate / rate) + 64) // unit_m) * unit_m
    new_i_len = new_m_len // unit_m * unit_i
    new_m = extend(engine, ctx_m, new_m_len, side, plan.config, plan.generator, plan.gl_iters, ctx_m.shape[-1],
                   plan.chunk_model_samples, on_window, report, plan.tempo,
                   (src.frames - n_ctx) / rate if side == "right" else 0.0)
    both = torch.cat([ctx_m, new_m], -1) if side == "right" else torch.cat([new_m, ctx_m], -1)
    both_i = from_model(both, engine, rate, src.channels, n_ctx + new_i_len)
    if side == "right":
        new_i = both_i[:, n_ctx:n_ctx + wanted]
        new_i = _match_step(new_i, ctx_i[:, -1], both_i[:, n_ctx - 1], plan.fade, at_start=True)
        return fade_edge(new_i, plan.fade, "end")
    offset = new_i_len  # where the context starts in both_i
    new_i = both_i[:, offset - wanted:offset]
    new_i = _match_step(new_i, ctx_i[:, 0], both_i[:, offset], plan.fade, at_start=False)
    return fade_edge(new_i, plan.fade, "start")


TASK = Task(
    "outpaint", "extend a file to the left and/or right by any length", outpaint,
    params=(Param("source", "path", REQUIRED, "input audio file"),
            Param("left", "float", 0.0, "length to add before the start (seconds, or BarsLength with a tempo)"),
            Param("right", "float", 0.0, "length to add after the end"), *TEMPO, *SAMPLING, *MASKED,
            Param("context_seconds", "float", CONTEXT_SECONDS, "seconds of audio each window continues"),
            Param("chunk_seconds", "float", CHUNK_SECONDS, "new seconds per window"),
            Param("edge_fade_ms", "float", FADE_SECONDS * 1000, "fade of the residual step at each seam"),
            *OUTPUT, *LAYOUT, *LIMITS),
    description="Extend an audio file (continue its end with right, lead into it with left). The input's samples "
                "are kept bit-identical between the extensions.",
    edits_input=True, max_seconds=lambda engine: MAX_EXTENSION_SECONDS)
