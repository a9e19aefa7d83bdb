"""`msanii-render SUBCOMMAND --bundle DIR ...`: render audio from a bundle on the command line.

Subcommands come from engine/tasks/ modules that define `register_cli(subparsers, common)` (see
engine/tasks/__init__.py), so a new task needs no change here. Errors print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import pkgutil
import sys
from pathlib import Path

from tqdm.auto import tqdm

from engine.audio_io import BIT_DEPTHS, FORMATS, AudioIOError, resample, write_audio
from engine.backends import BACKENDS, PRECISIONS
from engine.backends.onnx import DEVICES, BackendError
from engine.bundle import BundleError
from engine.limits import DEFAULT_MAX_INPUT_SECONDS, DEFAULT_MAX_RENDER_SECONDS, INPUT_OPTION, RENDER_OPTION
from engine.render import RenderError, RenderResult

FIRST = ("generate",)  # listed first in --help; the others follow alphabetically


def common_options() -> argparse.ArgumentParser:
    """Options every render subcommand shares (used as an argparse parent)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("bundle and output")
    g.add_argument("--bundle", required=True, type=Path, help="model bundle directory (manifest.json + .onnx)")
    g.add_argument("--out", type=Path, help="output file (default: msanii-TASK-seedN.wav in the current folder)")
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


def _task_modules() -> list:
    import engine.tasks
    names = [m.name for m in pkgutil.iter_modules(engine.tasks.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (n not in FIRST, FIRST.index(n) if n in FIRST else 0, n))
    modules = [importlib.import_module(f"engine.tasks.{n}") for n in names]
    return [m for m in modules if hasattr(m, "register_cli")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msanii-render", description="Render music with a Msanii model bundle.")
    subparsers = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    common = common_options()
    for module in _task_modules():
        module.register_cli(subparsers, common)
    return parser


def default_out_path(task: str, seed, fmt: str) -> Path:
    """A name that does not exist yet: msanii-TASK-seedN.wav, then -2, -3, ..."""
    stem = f"msanii-{task}" + (f"-seed{seed}" if seed is not None else "")
    path = Path(f"{stem}.{fmt}")
    n = 2
    while path.exists():
        path, n = Path(f"{stem}-{n}.{fmt}"), n + 1
    return path


def write_result(result: RenderResult, args: argparse.Namespace):
    """Resample to the requested rate and write the file; returns engine.audio_io.WriteResult."""
    rate = args.rate or result.info.get("input_sample_rate") or result.sample_rate
    audio = result.audio
    if rate != result.sample_rate:
        seconds = result.info.get("seconds_requested")
        length = round(seconds * rate) if seconds else round(audio.shape[-1] * rate / result.sample_rate)
        audio = resample(audio, result.sample_rate, rate, length)
    fmt = args.format or (args.out.suffix.lstrip(".").lower() if args.out and args.out.suffix else "wav")
    out = args.out or default_out_path(args.task, result.info.get("seed"), fmt)
    return write_audio(out, audio, rate, format=fmt, bit_depth=args.bit_depth, overwrite=args.overwrite)


def _check_args(args: argparse.Namespace) -> None:
    if args.rate is not None and not 1000 <= args.rate <= 384_000:
        raise RenderError(f"--rate must be between 1000 and 384000 Hz, got {args.rate}")
    if args.threads is not None and args.threads < 1:
        raise RenderError(f"--threads must be >= 1, got {args.threads}")
    if args.out is not None and args.out.exists() and not args.overwrite:  # fail before minutes of rendering
        raise FileExistsError(f"{args.out} already exists (pass --overwrite to replace it)")
    if args.out is not None and not args.out.parent.is_dir():
        raise AudioIOError(f"output folder does not exist: {args.out.parent}")
    fmt = args.format or (args.out.suffix.lstrip(".").lower() if args.out and args.out.suffix else "wav")
    if fmt not in FORMATS:
        raise AudioIOError(f"unsupported output format {fmt!r}: use wav or flac (or --format)")
    if fmt == "flac" and args.bit_depth == "32f":
        raise AudioIOError("FLAC stores integers only: use --bit-depth 16 or 24 with flac, or wav for 32f")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.api import Engine  # after parsing: --help stays fast

    try:
        _check_args(args)
        engine = Engine.load(args.bundle, device=args.device, threads=args.threads, backend=args.backend,
                             precision=args.precision, cuda_graphs=args.cuda_graphs)
        bar = None  # opened on the first progress report, so argument errors print alone

        def progress(fraction: float) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=1000, disable=args.quiet, desc=args.task, leave=False,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
            bar.update(max(0, round(fraction * 1000) - bar.n))
        try:
            result = args.run(engine, args, progress)
        finally:
            if bar is not None:
                bar.close()
        # a task may write its own result (region edits keep the input's native samples): set_defaults(write=...)
        written = getattr(args, "write", write_result)(result, args)
    except (BundleError, RenderError, AudioIOError, BackendError, ValueError, OSError) as exc:
        print(f"msanii-render: error: {exc}", file=sys.stderr)  # FileExistsError/PermissionError are OSErrors
        return 2
    except MemoryError:
        print("msanii-render: error: out of memory: render fewer seconds or close other programs", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("msanii-render: interrupted, nothing written", file=sys.stderr)
        return 130
    seconds = result.audio.shape[-1] / result.sample_rate
    note = f", peak {20 * math.log10(written.peak):+.1f} dBFS lowered by {-written.gain_db:.1f} dB" \
        if written.limited else ""
    print(f"msanii-render: wrote {written.path} ({seconds:.2f} s, {written.sample_rate} Hz, {written.format} "
          f"{written.subtype}, seed {result.info.get('seed')}{note})", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.info, "path": str(written.path), "sample_rate": written.sample_rate,
                          "format": written.format, "subtype": written.subtype, "limited": written.limited,
                          "gain_db": written.gain_db}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
