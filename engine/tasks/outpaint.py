"""Outpainting (paper section 5.5): extend a file to the left and/or right by any length.

Long extensions are generated in sliding windows: each window holds `context_seconds` of the audio it continues
(the original's end, then the previously generated audio) followed by `chunk_seconds` of new audio, and is rendered
with the context known at every step (engine.tasks.editing.render_spans), so window k+1 is conditioned on the end
of window k and a 30 s clip can become a 190 s one. The input's samples are written unchanged between the
extensions; the join is continuous because the generated phase is solved with the original samples held fixed,
and a residual offset at the seam is faded out inside the new audio. Also registers `msanii-render outpaint`.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from engine.boundary import measure_boundaries
from engine.dsp.crossfade import equal_power_curves, fade_edge
from engine.limits import UNBOUNDED, Limits
from engine.masked_sampling import MaskedConfig, count_unet_calls
from engine.regions import Length, RegionError, Tempo, length_seconds, parse_length, to_samples
from engine.render import Progress
from engine.tasks.cli_support import (add_input, add_sampling, add_tempo, gl_iters_for, limits_from,
                                      masked_config, native_output, tempo_from)
from engine.tasks.editing import FADE_SECONDS, EditResult, SpanRender, from_model, make_result, render_spans, to_model
from engine.tasks.inpaint import load_source
from engine.tasks.pcm import NativeAudio, check_output_path, float_to_samples, output_layout, samples_to_float

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
           on_window: Callable[[int, str, float], None], report: SpanRender) -> torch.Tensor:
    """Model-rate audio [C, new_samples] continuing `context` [C, n] to the right (side "right") or leading into
    it from the left ("left"), window by window."""
    pieces: list[torch.Tensor] = []
    done, window = 0, 0
    known = context
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
        else:
            audio, spans = torch.cat([zeros, ctx], -1), [(0, chunk + lookahead)]
        out = render_spans(engine, audio, spans, config, generator, gl_iters,
                           on_call=lambda f, w=window: on_window(w, "sampling", f),
                           on_phase=lambda i, w=window: on_window(w, "phase", i + 1), report=report)
        new = out[:, spans[0][0]:spans[0][0] + chunk] if side == "right" else out[:, lookahead:lookahead + chunk]
        pieces.append(new)
        known = torch.cat([known, new], -1) if side == "right" else torch.cat([new, known], -1)
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


def outpaint(engine: "Engine", source: str | Path | NativeAudio, left: Length = 0.0, right: Length = 0.0, *,
             tempo: Tempo | None = None, seed: int | None = None, steps: int | None = None,
             sampler: str | None = None, method: str = "replace", jumps: int | None = None,
             gl_iters: int | None = None, context_seconds: float = CONTEXT_SECONDS,
             chunk_seconds: float = CHUNK_SECONDS, edge_fade_ms: float = FADE_SECONDS * 1000,
             callback: Callable[[float], None] | None = None, output: str | Path | None = None,
             overwrite: bool = False, format: str | None = None, bit_depth: int | str | None = None,
             limits: Limits | None = None) -> EditResult:
    """Extend `source` by `left` and `right` (seconds, or BarsLength with a tempo). The input's samples appear
    unchanged between the extensions; the new audio is at the input's rate and bit depth."""
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
    iters = gl_iters_for(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    rate, model_rate = src.sample_rate, engine.sample_rate
    ext = {"left": to_samples(left_s, rate), "right": to_samples(right_s, rate)}
    chunk_m, ctx_target = int(chunk_seconds * model_rate), context_seconds
    windows = {side: -(-math.ceil(n * model_rate / rate) // chunk_m) if n else 0 for side, n in ext.items()}
    n_windows = sum(windows.values())
    calls_each = count_unet_calls(config)
    tracker = Progress(callback, {"sampling": 2.0 * calls_each * n_windows, "phase": 1.0 * iters * n_windows})
    finished = {"count": 0}

    def on_window(w: int, stage: str, amount: float) -> None:
        base = finished["count"] + w
        tracker.update(stage, 2.0 * calls_each * (base + amount) if stage == "sampling" else iters * base + amount)

    start = time.perf_counter()
    report = SpanRender()
    fade = int(round(edge_fade_ms / 1000 * rate))
    parts: dict[str, np.ndarray] = {}
    for side in ("left", "right"):
        if not ext[side]:
            continue
        n_ctx = _aligned_context(rate, model_rate, ctx_target, src.frames)
        ctx_i = src.to_float(src.frames - n_ctx, None) if side == "right" else src.to_float(0, n_ctx)
        ctx_m = to_model(ctx_i, rate, engine)
        # new audio at the model rate: a little spare for the resampler's edge, and a whole number of samples
        # at both rates so the context stays sample-aligned after resampling
        g = math.gcd(rate, model_rate)
        unit_m, unit_i = model_rate // g, rate // g
        new_m_len = -(-(math.ceil(ext[side] * model_rate / rate) + 64) // unit_m) * unit_m
        new_i_len = new_m_len // unit_m * unit_i
        new_m = extend(engine, ctx_m, new_m_len, side, config, generator, iters, ctx_m.shape[-1], chunk_m,
                       on_window, report)
        finished["count"] += windows[side]
        both = torch.cat([ctx_m, new_m], -1) if side == "right" else torch.cat([new_m, ctx_m], -1)
        both_i = from_model(both, engine, rate, src.channels, n_ctx + new_i_len)
        if side == "right":
            new_i = both_i[:, n_ctx:n_ctx + ext[side]]
            new_i = _match_step(new_i, ctx_i[:, -1], both_i[:, n_ctx - 1], fade, at_start=True)
            parts[side] = fade_edge(new_i, fade, "end")
        else:
            offset = new_i_len  # where the context starts in both_i
            new_i = both_i[:, offset - ext[side]:offset]
            new_i = _match_step(new_i, ctx_i[:, 0], both_i[:, offset], fade, at_start=False)
            parts[side] = fade_edge(new_i, fade, "start")
    tracker.update("phase", float(iters * n_windows))

    middle = src.samples if subtype == src.subtype else float_to_samples(src.to_float().T, subtype, dither=True)
    blocks = [float_to_samples(parts["left"].T, subtype, dither=True)] if "left" in parts else []
    blocks += [middle] + ([float_to_samples(parts["right"].T, subtype, dither=True)] if "right" in parts else [])
    samples = np.concatenate(blocks, axis=0)
    seams = ([ext["left"]] if ext["left"] else []) + ([ext["left"] + src.frames] if ext["right"] else [])
    info = {"task": "outpaint", "seed": seed, "left_s": ext["left"] / rate, "right_s": ext["right"] / rate,
            "input_seconds": src.seconds, "seconds": samples.shape[0] / rate, "windows": n_windows,
            "context_s": context_seconds, "chunk_s": chunk_seconds, "unet_calls": report.unet_calls,
            "sampling_s": report.sampling_s, "phase_s": report.phase_s, "method": method, "sampler": config.sampler,
            "steps": config.steps, "jumps": config.jumps, "gl_iters": iters, "format": fmt, "subtype": subtype,
            "input": str(src.path) if src.path else None, "input_sample_rate": rate,
            "original_at_samples": [ext["left"], ext["left"] + src.frames],
            "bit_identical_inside": subtype == src.subtype, "total_s": time.perf_counter() - start,
            "device": engine.device, "bundle": engine.name}
    try:
        info["boundary"] = measure_boundaries(samples_to_float(samples).T, seams, rate,
                                              reference=[src.to_float()] + list(parts.values())).to_dict()
    except ValueError as exc:
        info["boundary"] = {"skipped": str(exc)}
    result = make_result(samples, rate, fmt, subtype, info)
    if output is not None:
        result.write(output, overwrite)
    return result


# ---------------------------------------------------------------------------------------------- CLI

def register_cli(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "outpaint", parents=[common], help="extend a file to the left and/or right by any length",
        description="Extend an audio file (continue its end with --right, lead into it with --left). Lengths in "
                    "seconds (8, 8s) or bars (4b, 2:3 = 2 bars 3 beats, needs --bpm). The input's samples are "
                    "kept bit-identical between the extensions.")
    add_input(p)
    p.add_argument("--left", default="0", help="length to add before the start (default 0)")
    p.add_argument("--right", default="0", help="length to add after the end (default 0)")
    p.add_argument("--context", type=float, default=CONTEXT_SECONDS, help="seconds of audio each window continues")
    p.add_argument("--chunk", type=float, default=CHUNK_SECONDS, help="new seconds per window")
    add_sampling(p)
    add_tempo(p)
    native_output(p)
    p.set_defaults(run=run_cli)


def run_cli(engine: "Engine", args: argparse.Namespace, callback: Callable[[float], None]) -> EditResult:
    return outpaint(engine, args.input, parse_length(args.left), parse_length(args.right), tempo=tempo_from(args),
                    seed=args.seed, steps=args.steps, sampler=args.sampler, method=args.method, jumps=args.jumps,
                    gl_iters=args.gl_iters, context_seconds=args.context, chunk_seconds=args.chunk,
                    callback=callback, format=args.format, bit_depth=args.bit_depth, limits=limits_from(args))
