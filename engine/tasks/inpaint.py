"""Inpainting (paper section 5.4): regenerate one or more regions of a file, everything else untouched.

Regions are seconds or bars/beats (engine.regions). The model sees up to CONTEXT_SECONDS of the real audio each
side of a region at every step (replacement sampling, engine.masked_sampling); RePaint (j=10, r=10, the
reference implementation's) stays selectable as `method="repaint"`. Also registers `msanii-render inpaint`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from engine.finite import check_input
from engine.limits import UNBOUNDED, Limits
from engine.regions import Region, SampleRegion, Tempo, parse_region, resolve_regions
from engine.render import RenderError
from engine.tasks.cli_support import (add_input, add_sampling, add_tempo, gl_iters_for, limits_from,
                                      masked_config, native_output, tempo_from)
from engine.tasks.editing import CONTEXT_SECONDS, FADE_SECONDS, EditResult, edit_regions, make_result
from engine.tasks.pcm import NativeAudio, check_output_path, read_native

if TYPE_CHECKING:
    from engine.api import Engine

RegionLike = Region | tuple | str
PHASES = {"anchored": "context", "free": "free"}


def as_regions(regions: Sequence[RegionLike]) -> list[Region]:
    """Region objects from Region, (start, end) pairs (seconds or BarBeat) or "START-END" strings."""
    out = []
    for r in regions:
        if isinstance(r, Region):
            out.append(r)
        elif isinstance(r, str):
            out.append(parse_region(r))
        else:
            start, end = r
            out.append(Region(start, end))
    return out


def load_source(source: str | Path | NativeAudio, limits: Limits | None = None, frames: int | None = None
                ) -> NativeAudio:
    """The task's input: a file read (its header checked against `limits` first; only the first `frames` if
    given), or audio already in memory, held to the same limits and non-finite policy."""
    if not isinstance(source, NativeAudio):
        return read_native(source, limits, frames=frames)
    (limits or UNBOUNDED).check_input(source.seconds, source.path or "the input")
    check_input(source.samples, source.sample_rate, source.path or "the input")
    return source


def rendered_seconds(regions: Sequence[SampleRegion], sample_rate: int) -> float:
    """New audio a region edit renders: the regions' total length."""
    return sum(r.length for r in regions) / sample_rate


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
    iters = gl_iters_for(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    from engine.tasks.pcm import output_layout
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    start = time.perf_counter()
    samples, info = edit_regions(engine, src, resolved, config, generator, iters, callback, fade_s=fade_ms / 1000,
                                 context_s=context_seconds, phase_init=PHASES[phase], output_format=fmt,
                                 output_subtype=subtype)
    info.update({"task": "inpaint", "seed": seed, "method": method, "phase": phase, "sampler": config.sampler,
                 "steps": config.steps, "jumps": config.jumps, "gl_iters": iters, "seconds": src.seconds,
                 "input": str(src.path) if src.path else None, "input_sample_rate": src.sample_rate,
                 "total_s": time.perf_counter() - start, "device": engine.device, "bundle": engine.name})
    result = make_result(samples, src.sample_rate, fmt, subtype, info)
    if output is not None:
        result.write(output, overwrite)
    return result


# ---------------------------------------------------------------------------------------------- CLI

def register_cli(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "inpaint", parents=[common], help="regenerate regions of a file, the rest untouched",
        description="Regenerate regions of an audio file. Audio outside the regions is written bit-identical "
                    "(same rate, format and bit depth as the input unless --format/--bit-depth/--rate say otherwise).")
    add_input(p)
    p.add_argument("--region", action="append", required=True, metavar="START-END",
                   help="seconds (12.5-16) or bar:beat (5:1-9:1, needs --bpm); repeat for more regions")
    p.add_argument("--fade-ms", type=float, default=FADE_SECONDS * 1000, help="crossfade inside each region edge")
    p.add_argument("--context", type=float, default=CONTEXT_SECONDS, help="seconds of audio the model sees each side")
    add_sampling(p)
    add_tempo(p)
    native_output(p)
    p.set_defaults(run=run_cli)


def run_cli(engine: "Engine", args: argparse.Namespace, callback: Callable[[float], None]) -> EditResult:
    return inpaint(engine, args.input, [parse_region(r) for r in args.region], tempo=tempo_from(args),
                   seed=args.seed, steps=args.steps, sampler=args.sampler, method=args.method, jumps=args.jumps,
                   gl_iters=args.gl_iters, fade_ms=args.fade_ms, context_seconds=args.context, callback=callback,
                   format=args.format, bit_depth=args.bit_depth, limits=limits_from(args))
