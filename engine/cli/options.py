"""Options the `msanii-render` subcommands share, and turning them into task params (limits, tempo, sampling)."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.audio_io import BIT_DEPTHS, FORMATS, AudioIOError
from engine.backends import BACKENDS, PRECISIONS
from engine.backends.onnx import DEVICES
from engine.limits import (DEFAULT_MAX_INPUT_SECONDS, DEFAULT_MAX_RENDER_SECONDS, INPUT_OPTION, RENDER_OPTION,
                           SAMPLE_RATES, Limits)
from engine.masked_sampling import METHODS
from engine.regions import RegionError, Tempo
from engine.render import RenderError
from engine.samplers import JUMP_SAMPLER, SAMPLER_NAMES
from engine.tasks.settings import DEFAULT_JUMPS


def common_options() -> argparse.ArgumentParser:
    """Options every render subcommand shares (used as an argparse parent)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("bundle and output")
    g.add_argument("--bundle", required=True, type=Path, help="model bundle directory (manifest.json + .onnx)")
    g.add_argument("-o", "--out", type=Path, help="output file (default: msanii-TASK-seedN.wav in the current folder)")
    g.add_argument("--rate", type=int, help="output sample rate (default: the model's, or the input's)")
    g.add_argument("--format", choices=sorted(FORMATS), help="file format (default: from --out's extension, wav)")
    g.add_argument("--bit-depth", choices=sorted(BIT_DEPTHS), default="24", help="16, 24 (default) or 32f")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.add_argument("--threads", type=int, help="CPU threads (default: all cores available to this process)")
    g.add_argument("--device", choices=DEVICES, default="auto", help="auto (GPU if usable), cpu, cuda, tensorrt")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="onnx, torch (the bundle's .pt2 programs, from msanii-export --torch) or auto (torch on a "
                   "CUDA device when the bundle has them, else onnx)")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="torch backend: autocast precision (default fp32)")
    g.add_argument("--cuda-graphs", action="store_true", help="torch backend on CUDA: replay each step as a CUDA graph")
    g = p.add_argument_group("limits (the same as msanii-osc's)")
    g.add_argument(INPUT_OPTION, dest="max_input_seconds", type=float, default=DEFAULT_MAX_INPUT_SECONDS,
                   metavar="S", help=f"refuse input files longer than S seconds (default {DEFAULT_MAX_INPUT_SECONDS:g})")
    g.add_argument(RENDER_OPTION, dest="max_render_seconds", type=float, default=DEFAULT_MAX_RENDER_SECONDS,
                   metavar="S", help="refuse a task that would render more than S seconds of new audio (default "
                   f"{DEFAULT_MAX_RENDER_SECONDS:g}; generate and loop also stop at the model's longest render)")
    g = p.add_argument_group("output")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print the render's details as JSON on stdout")
    return p


def add_input(p: argparse.ArgumentParser, name: str = "--in", dest: str = "input", what: str = "input") -> None:
    p.add_argument(name, dest=dest, type=Path, required=True, help=f"{what} audio file (WAV, FLAC, OGG; any rate)")


def add_sampling(p: argparse.ArgumentParser, masked: bool = True) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--seed", type=int, help="random seed (default: fresh; reported so you can repeat a render)")
    g.add_argument("--steps", type=int, help="sampler steps (default: the bundle's)")
    g.add_argument("--sampler", choices=SAMPLER_NAMES,
                   help="dpmpp (default) or ddim (the paper's; default with --jumps)")
    g.add_argument("--gl-iters", type=int, help="phase reconstruction iterations (default: the bundle's)")
    if masked:
        g.add_argument("--method", choices=METHODS, default="replace",
                       help="replace (ours, default) or repaint (RePaint j=10 r=10, the reference's; ~9.5x calls)")
        g.add_argument("--jumps", type=int,
                       help=f"resampling passes per late step (default {DEFAULT_JUMPS} with {JUMP_SAMPLER})")


def add_tempo(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("musical time (bar:beat positions, bar lengths, the beat a beat-conditioned bundle follows)")
    g.add_argument("--bpm", type=float, help="tempo in quarter notes per minute (generate without it: a training "
                   "piece's tempo and metre, drawn by the seed, where the bundle records them)")
    g.add_argument("--time-signature", default="4/4", help="e.g. 4/4, 3/4, 6/8 (default 4/4)")
    g.add_argument("--origin", type=float, default=0.0, help="seconds where bar 1 beat 1 falls (default 0)")
    g.add_argument("--beat-guidance", type=float, metavar="W", help="how strictly a beat-conditioned bundle holds "
                   "the --bpm grid: 1 plain, 2-4 tighter (strikes on the beat, the tempo kept) at twice the model "
                   "time; default: the bundle's")


def sampling_from(args: argparse.Namespace, masked: bool = True) -> dict:
    """The sampling params of a subcommand made with `add_sampling`."""
    params = {"seed": args.seed, "steps": args.steps, "sampler": args.sampler, "gl_iters": args.gl_iters}
    if masked:
        params.update(method=args.method, jumps=args.jumps)
    return params


def limits_from(args: argparse.Namespace) -> Limits:
    """The render's bounds from --max-input-seconds / --max-render-seconds (the common options)."""
    try:
        return Limits(args.max_input_seconds, args.max_render_seconds)
    except ValueError as exc:
        raise RenderError(str(exc).replace("max_input_seconds", INPUT_OPTION)
                          .replace("max_render_seconds", RENDER_OPTION)) from None


def tempo_from(args: argparse.Namespace) -> Tempo | None:
    if args.bpm is None:
        if args.beat_guidance is not None:
            raise RegionError("--beat-guidance needs --bpm (the grid it holds the music to)")
        return None
    return Tempo.parse(args.bpm, args.time_signature, args.origin, args.beat_guidance)


def output_format(args: argparse.Namespace) -> str:
    """--format, else --out's extension, else wav."""
    return args.format or (args.out.suffix.lstrip(".").lower() if args.out and args.out.suffix else "wav")


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad common options before the engine loads (and before minutes of rendering)."""
    low, high = SAMPLE_RATES
    if args.rate is not None and not low <= args.rate <= high:
        raise RenderError(f"--rate must be between {low} and {high} Hz, got {args.rate}")
    if args.threads is not None and args.threads < 1:
        raise RenderError(f"--threads must be >= 1, got {args.threads}")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} already exists (pass --overwrite to replace it)")
    if args.out is not None and not args.out.parent.is_dir():
        raise AudioIOError(f"output folder does not exist: {args.out.parent}")
    fmt = output_format(args)
    if fmt not in FORMATS:
        raise AudioIOError(f"unsupported output format {fmt!r}: use wav or flac (or --format)")
    if fmt == "flac" and args.bit_depth == "32f":
        raise AudioIOError("FLAC stores integers only: use --bit-depth 16 or 24 with flac, or wav for 32f")
