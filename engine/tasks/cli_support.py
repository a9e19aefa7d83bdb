"""Command-line pieces the region tasks share: options, settings resolution and the native-sample writer.

The writer is installed with `set_defaults(write=write_edit)`; engine.cli calls it instead of its float writer,
so an edited file is written from the input's own samples (bit-identical outside the edits).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.audio_io import WriteResult, resample
from engine.finite import check_output
from engine.limits import Limits
from engine.masked_sampling import METHODS, MaskedConfig
from engine.regions import Tempo
from engine.render import RenderError
from engine.samplers import SAMPLER_NAMES as SAMPLERS
from engine.tasks.pcm import AudioFileError, float_to_samples, write_native

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.tasks.editing import EditResult

DEFAULT_JUMPS = 1


def masked_config(engine: "Engine", steps: int | None, sampler: str | None, method: str, jumps: int | None,
                  strength: float = 1.0, circular: bool = False) -> MaskedConfig:
    """Settings for masked sampling with the bundle's step count by default. The sampler defaults to DPM-Solver++
    (from noise: 3M on log-SNR steps; partial strengths: 2M on linear steps; engine.sampling.solver_settings):
    against DDIM with a resampling jump it measured closer to the original's level (inpaint -3.5 vs -11.2 dB,
    outpaint -0.5 vs -7.1, audio-to-audio at 0.6 -1.5 vs -3.7), chroma and log-mel, with seams in the same range,
    at fewer U-Net calls (bench/RESULTS.md). Asking for jumps (or for DDIM) gives DDIM, with 1 jump by default."""
    if sampler is None:
        sampler = "ddim" if jumps else "dpmpp"
    if sampler not in SAMPLERS:
        raise RenderError(f"unknown sampler {sampler!r}: use {' or '.join(SAMPLERS)}")
    if method not in METHODS:
        raise RenderError(f"unknown inpainting method {method!r}: use {' or '.join(METHODS)}")
    steps = engine.defaults.steps if steps is None else steps
    limit = engine.bundle.diffusion.num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= limit:
        raise RenderError(f"steps must be an integer from 1 to {limit}, got {steps!r}")
    if jumps is None:
        jumps = DEFAULT_JUMPS if sampler == "ddim" else 0
    if jumps and sampler != "ddim":
        raise RenderError("resampling jumps need --sampler ddim (dpmpp keeps a history of steps)")
    if not 0.0 < strength <= 1.0:
        raise RenderError(f"strength must be in (0, 1], got {strength}")
    return MaskedConfig(steps=steps, strength=strength, jumps=jumps, method=method, sampler=sampler,
                        circular=circular)


def gl_iters_for(engine: "Engine", gl_iters: int | None) -> int:
    gl_iters = engine.defaults.gl_iters if gl_iters is None else gl_iters
    if isinstance(gl_iters, bool) or not isinstance(gl_iters, int) or not 0 <= gl_iters <= 10_000:
        raise RenderError(f"gl_iters must be an integer from 0 to 10000, got {gl_iters!r}")
    return gl_iters


def add_input(p: argparse.ArgumentParser, name: str = "--in", dest: str = "input", what: str = "input") -> None:
    p.add_argument(name, dest=dest, type=Path, required=True, help=f"{what} audio file (WAV, FLAC, OGG; any rate)")


def add_sampling(p: argparse.ArgumentParser, masked: bool = True) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--seed", type=int, help="random seed (default: fresh; reported so you can repeat a render)")
    g.add_argument("--steps", type=int, help="sampler steps (default: the bundle's)")
    g.add_argument("--sampler", choices=SAMPLERS,
                   help="dpmpp (default) or ddim (the paper's; default with --jumps)")
    g.add_argument("--gl-iters", type=int, help="phase reconstruction iterations (default: the bundle's)")
    if masked:
        g.add_argument("--method", choices=METHODS, default="replace",
                       help="replace (ours, default) or repaint (RePaint j=10 r=10, the reference's; ~9.5x calls)")
        g.add_argument("--jumps", type=int, help=f"resampling passes per late step (default {DEFAULT_JUMPS} with ddim)")


def add_tempo(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("musical time (for bar:beat positions and bar lengths)")
    g.add_argument("--bpm", type=float, help="tempo in quarter notes per minute")
    g.add_argument("--time-signature", default="4/4", help="e.g. 4/4, 3/4, 6/8 (default 4/4)")
    g.add_argument("--origin", type=float, default=0.0, help="seconds where bar 1 beat 1 falls (default 0)")


def limits_from(args: argparse.Namespace) -> Limits:
    """The render's bounds from --max-input-seconds / --max-render-seconds (engine.cli's common options)."""
    try:
        return Limits(args.max_input_seconds, args.max_render_seconds)
    except ValueError as exc:
        raise RenderError(str(exc).replace("max_input_seconds", "--max-input-seconds")
                          .replace("max_render_seconds", "--max-render-seconds")) from None


def tempo_from(args: argparse.Namespace) -> Tempo | None:
    return Tempo.parse(args.bpm, args.time_signature, args.origin) if args.bpm is not None else None


def native_output(p: argparse.ArgumentParser) -> None:
    """Edits keep the input's format and bit depth unless asked: undo the common parser's fixed defaults."""
    p.set_defaults(bit_depth=None, write=write_edit)


def write_edit(result: "EditResult", args: argparse.Namespace) -> WriteResult:
    from engine.cli import default_out_path

    ext = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "AIFF": "aiff"}.get(result.format, "wav")
    out = args.out or default_out_path(args.task, result.info.get("seed"), ext)
    if args.rate and args.rate != result.sample_rate:  # a different rate was asked for: everything is resampled
        audio = resample(result.audio, result.sample_rate, args.rate)
        check_output(audio)  # before the clip, which would turn an infinity into a full-scale sample
        samples = float_to_samples(np.clip(audio, -1.0, 1.0).T, result.subtype)
        path = write_native(out, samples, args.rate, result.format, result.subtype, args.overwrite)
        return WriteResult(path, False, float(np.abs(audio).max()), 0.0, result.format, result.subtype, args.rate)
    try:
        return result.write(out, overwrite=args.overwrite)
    except AudioFileError as exc:
        if "exists" in str(exc):
            raise FileExistsError(str(exc)) from None
        raise
