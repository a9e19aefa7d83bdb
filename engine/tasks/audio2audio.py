"""Audio-to-audio / style transfer (paper section 5.2): noise the input's mel to `strength`, denoise it back.

strength 0..1 is the fraction of the noise schedule: low keeps the input's structure and changes its sound, high
keeps little but the rhythm. Whole file by default, or only `regions` (the rest of the file untouched, with the
model seeing it as context). Griffin-Lim starts from the input's own phase, which keeps transients in place.
Also registers `msanii-render audio2audio`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from engine.regions import RegionError, SampleRegion, Tempo, parse_region, resolve_regions
from engine.tasks.cli_support import (add_input, add_sampling, add_tempo, gl_iters_for, masked_config,
                                      native_output, tempo_from)
from engine.tasks.editing import CONTEXT_SECONDS, FADE_SECONDS, EditResult, edit_regions, make_result
from engine.tasks.inpaint import RegionLike, as_regions, load_source
from engine.tasks.pcm import NativeAudio, check_output_path, output_layout

if TYPE_CHECKING:
    from engine.api import Engine


def audio2audio(engine: "Engine", source: str | Path | NativeAudio, strength: float, *,
                regions: Sequence[RegionLike] | None = None, tempo: Tempo | None = None, seed: int | None = None,
                steps: int | None = None, sampler: str | None = None, jumps: int | None = None,
                gl_iters: int | None = None, fade_ms: float = FADE_SECONDS * 1000,
                callback: Callable[[float], None] | None = None, output: str | Path | None = None,
                overwrite: bool = False, format: str | None = None,
                bit_depth: int | str | None = None) -> EditResult:
    """Re-render `source` (or its `regions`) from its mel noised to `strength` (0 < strength <= 1)."""
    try:
        strength = float(strength)
    except (TypeError, ValueError):
        raise RegionError(f"strength must be a number between 0 and 1, got {strength!r}") from None
    if not 0.0 < strength <= 1.0:
        raise RegionError(f"strength must be in (0, 1] (0 would return the input unchanged), got {strength}")
    src = load_source(source)
    if output is not None:
        check_output_path(output, overwrite)
    if regions:
        resolved = resolve_regions(as_regions(regions), src.frames, src.sample_rate, tempo)
    else:
        resolved = [SampleRegion(0, src.frames)]
    config = masked_config(engine, steps, sampler, "replace", jumps, strength)
    iters = gl_iters_for(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(src, format, bit_depth=bit_depth)
    start = time.perf_counter()
    samples, info = edit_regions(engine, src, resolved, config, generator, iters, callback, fade_s=fade_ms / 1000,
                                 context_s=CONTEXT_SECONDS, phase_init="original", output_format=fmt,
                                 output_subtype=subtype)
    info.update({"task": "audio2audio", "seed": seed, "strength": strength, "sampler": config.sampler,
                 "steps": config.steps, "jumps": config.jumps, "gl_iters": iters, "seconds": src.seconds,
                 "whole_file": not regions, "input": str(src.path) if src.path else None,
                 "input_sample_rate": src.sample_rate, "total_s": time.perf_counter() - start,
                 "device": engine.device, "bundle": engine.name})
    result = make_result(samples, src.sample_rate, fmt, subtype, info)
    if output is not None:
        result.write(output, overwrite)
    return result


# ---------------------------------------------------------------------------------------------- CLI

def register_cli(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "audio2audio", parents=[common], help="re-render a file (or regions of it) in the model's style",
        description="Noise the input's mel to --strength and denoise it back (paper 5.2). With --region only those "
                    "regions change; the rest is written bit-identical.")
    add_input(p)
    p.add_argument("--strength", type=float, required=True, help="0..1: how far from the input (e.g. 0.3-0.7)")
    p.add_argument("--region", action="append", metavar="START-END", help="only these regions (repeatable)")
    p.add_argument("--fade-ms", type=float, default=FADE_SECONDS * 1000, help="crossfade inside region edges")
    add_sampling(p, masked=False)
    p.add_argument("--jumps", type=int, help="resampling passes per late step (ddim only; default 1)")
    add_tempo(p)
    native_output(p)
    p.set_defaults(run=run_cli)


def run_cli(engine: "Engine", args: argparse.Namespace, callback: Callable[[float], None]) -> EditResult:
    regions = [parse_region(r) for r in args.region] if args.region else None
    return audio2audio(engine, args.input, args.strength, regions=regions, tempo=tempo_from(args), seed=args.seed,
                       steps=args.steps, sampler=args.sampler, jumps=args.jumps, gl_iters=args.gl_iters,
                       fade_ms=args.fade_ms, callback=callback, format=args.format, bit_depth=args.bit_depth)
