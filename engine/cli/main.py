"""`msanii-render`'s entry point: one subcommand per registered task, dispatched through engine.tasks."""
from __future__ import annotations

import argparse
import json
import math
import sys

from tqdm.auto import tqdm

from engine.audio_io import AudioIOError
from engine.backends.onnx import BackendError
from engine.bundle import BundleError
from engine.cli.forms import form_for
from engine.cli.options import check_args, common_options
from engine.cli.output import write_edit, write_result
from engine.render import RenderError
from engine.tasks import get_task, tasks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msanii-render", description="Render music with a Msanii model bundle.")
    subparsers = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    common = common_options()
    for task in tasks():
        form = form_for(task)
        p = subparsers.add_parser(task.name, parents=[common], help=task.summary,
                                  description=form.description or task.description or task.summary)
        form.add(p)
        if task.edits_input:  # edits keep the input's format and bit depth unless asked: no fixed default
            p.set_defaults(bit_depth=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.api import Engine  # after parsing: --help stays fast

    task = get_task(args.task)
    try:
        check_args(args)
        engine = Engine.load(args.bundle, device=args.device, threads=args.threads, backend=args.backend,
                             precision=args.precision, cuda_graphs=args.cuda_graphs)
        params = form_for(task).params(args)
        bar = None  # opened on the first progress report, so argument errors print alone

        def progress(fraction: float) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=1000, disable=args.quiet, desc=args.task, leave=False,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
            bar.update(max(0, round(fraction * 1000) - bar.n))
        try:
            result = task.run(engine, params, progress)
        finally:
            if bar is not None:
                bar.close()
        # an edit is written from the input's native samples (bit-identical outside the edited audio)
        written = (write_edit if task.edits_input else write_result)(result, args)
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
    if result.info.get("tempo_drawn"):  # say which tempo the seed picked, so the user can ask for it again
        note += f", {result.info['bpm']:g} BPM {result.info['time_signature']} drawn by the seed"
    print(f"msanii-render: wrote {written.path} ({seconds:.2f} s, {written.sample_rate} Hz, {written.format} "
          f"{written.subtype}, seed {result.info.get('seed')}{note})", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.info, "path": str(written.path), "sample_rate": written.sample_rate,
                          "format": written.format, "subtype": written.subtype, "limited": written.limited,
                          "gain_db": written.gain_db}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
