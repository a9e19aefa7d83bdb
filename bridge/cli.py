"""`msanii-osc`: serve a bundle over OSC/UDP for DAWs and Max/Pd patches (protocol: docs/osc.md)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from engine.limits import (DEFAULT_MAX_INPUT_SECONDS, DEFAULT_MAX_RENDER_SECONDS, INPUT_OPTION, RENDER_OPTION,
                           Limits)

log = logging.getLogger("msanii-osc")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="msanii-osc", description=__doc__)
    ap.add_argument("--bundle", required=True, type=Path, help="model bundle directory (manifest.json + ONNX)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1; anything else exposes the server to the network)")
    ap.add_argument("--port", type=int, default=9000, help="UDP port for requests (default 9000)")
    ap.add_argument("--reply-port", type=int, default=9001,
                    help="default reply port on the sender's host for clients that did not /msanii/register "
                         "(default 9001; 0 = reply to the sender's own port)")
    ap.add_argument("--output-dir", type=Path, default=Path.home() / "msanii-output",
                    help="root folder for rendered files (default ~/msanii-output)")
    ap.add_argument("--allow-input", type=Path, action="append", default=[], metavar="DIR",
                    help="folder clients may read input audio from (repeatable; the output folder always is)")
    ap.add_argument("--audition", action="store_true", help="play every finished clip on the output device")
    ap.add_argument("--device", default=None,
                    help="audition output device: index or name (default: system default)")
    ap.add_argument("--workers", type=int, default=None,
                    help="engine worker processes rendering at once (default 1, or one per --devices entry). "
                         "A worker that crashes fails only its job and is restarted. 0 = render inside the server "
                         "process (no crash isolation)")
    ap.add_argument("--devices", default=None,
                    help="comma-separated devices for the workers, assigned in turn: cpu, auto, cuda, cuda:N "
                         "(e.g. cuda:0,cuda:1; default: --engine-device)")
    ap.add_argument("--engine-device", default="auto", help="engine compute device: auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per engine (default: the usable cores divided among the workers)")
    # engine.backends.BACKENDS / PRECISIONS spelled out: importing them would load torch for --help
    ap.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                    help="engine backend: onnx, torch (the bundle's .pt2 programs) or auto (torch on a CUDA device "
                    "when the bundle has them, else onnx)")
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"), help="torch backend: autocast precision")
    ap.add_argument("--cuda-graphs", action="store_true", help="torch backend on CUDA: replay steps as CUDA graphs")
    ap.add_argument("--queue", type=int, default=8, help="jobs that may wait behind the running one (default 8)")
    ap.add_argument("--batch", type=int, default=1, metavar="N",
                    help="render up to N queued generate jobs of one length and settings as one batch (default 1: "
                    "off; needs --workers 0; a GPU gains most, a 2-core CPU little, the first clip waits for "
                    "its batch)")
    ap.add_argument(INPUT_OPTION, dest="max_input_seconds", type=float, default=DEFAULT_MAX_INPUT_SECONDS,
                    metavar="S", help="refuse input files longer than S seconds, from their header, before any "
                    f"work (default {DEFAULT_MAX_INPUT_SECONDS:g})")
    ap.add_argument(RENDER_OPTION, dest="max_render_seconds", type=float, default=DEFAULT_MAX_RENDER_SECONDS,
                    metavar="S", help="refuse a job that would render more than S seconds of new audio (default "
                    f"{DEFAULT_MAX_RENDER_SECONDS:g}; generate and loop also stop at the model's longest render)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every job")
    return ap


def _check_port(value: int, name: str, allow_zero: bool) -> None:
    if not ((allow_zero and value == 0) or 1 <= value <= 65535):
        raise SystemExit(f"msanii-osc: {name} must be 1..65535{' or 0' if allow_zero else ''}, got {value}")


class _Refused(Exception):
    """The server cannot start; the message is printed as `msanii-osc: <message>` and the exit code is 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="msanii-osc: %(message)s", stream=sys.stderr)
    workers, devices, limits = _check_options(args)
    specs = _plan_workers(args, workers, devices)
    _warn_if_exposed(args.host)
    audition = None
    try:
        paths = _open_paths(args)
        engine = _load_engine(args, specs)
        audition = _open_audition(args)
        bridge = _bind(args, engine, paths, audition, specs, limits)
    except _Refused as exc:
        print(f"msanii-osc: {exc}", file=sys.stderr)
        if audition is not None:
            audition.close()
        return 2
    return _serve(bridge, args, specs, paths)


def _check_options(args: argparse.Namespace) -> tuple[int, list[str], Limits]:
    """The options' own consistency (SystemExit naming the option): worker count, devices and limits."""
    _check_port(args.port, "--port", allow_zero=True)
    _check_port(args.reply_port, "--reply-port", allow_zero=True)
    if args.reply_port == args.port:
        raise SystemExit(f"msanii-osc: --reply-port must differ from --port ({args.port}): replies would come back "
                         "as requests")
    if args.queue < 1:
        raise SystemExit(f"msanii-osc: --queue must be >= 1, got {args.queue}")
    devices = [d.strip() for d in (args.devices or args.engine_device).split(",") if d.strip()]
    workers = args.workers if args.workers is not None else (len(devices) if args.devices else 1)
    if workers < 0:
        raise SystemExit(f"msanii-osc: --workers must be >= 0, got {workers}")
    if workers == 0 and args.devices:
        raise SystemExit("msanii-osc: --devices needs worker processes (--workers >= 1); use --engine-device "
                         "with --workers 0")
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"msanii-osc: --threads must be >= 1, got {args.threads}")
    if args.batch < 1:
        raise SystemExit(f"msanii-osc: --batch must be >= 1, got {args.batch}")
    for option, value in ((INPUT_OPTION, args.max_input_seconds), (RENDER_OPTION, args.max_render_seconds)):
        if not value > 0:
            raise SystemExit(f"msanii-osc: {option} must be > 0, got {value}")
    if args.batch > 1 and workers:
        raise SystemExit("msanii-osc: --batch renders on the in-process queue: add --workers 0")
    return workers, devices, Limits(args.max_input_seconds, args.max_render_seconds)


def _plan_workers(args: argparse.Namespace, workers: int, devices: list[str]) -> list | None:
    """The worker processes' specs, or None to render inside the server process (--workers 0)."""
    if not workers:
        return None
    from engine.serving import plan_workers
    try:
        return plan_workers(args.bundle.resolve(), workers, devices, args.threads, backend=args.backend,
                            precision=args.precision, cuda_graphs=args.cuda_graphs)
    except ValueError as exc:
        raise SystemExit(f"msanii-osc: {exc}") from None


def _warn_if_exposed(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        print(f"msanii-osc: WARNING: binding {host}: any machine that can reach this port can render, "
              "read files under --allow-input and fill the output folder. Use 127.0.0.1 unless you need this.",
              file=sys.stderr)


def _open_paths(args: argparse.Namespace):
    from bridge.paths import PathPolicy
    try:
        paths = PathPolicy(args.output_dir, args.allow_input)
    except (OSError, NotADirectoryError) as exc:
        raise _Refused(str(exc)) from None
    if not os.access(paths.output_root, os.W_OK | os.X_OK):  # every job would fail after rendering: say so now
        raise _Refused(f"the output folder {paths.output_root} is not writable by this user")
    return paths


def _load_engine(args: argparse.Namespace, specs: list | None):
    """The engine for in-process rendering; with worker processes only the bundle's check (each loads its own)."""
    from engine.backends.onnx import BackendError
    from engine.bundle import BundleError, load_bundle
    try:
        if specs:  # validate here for a clear message; each worker loads its own engine
            load_bundle(args.bundle)
            return None
        from engine.api import Engine
        return Engine.load(args.bundle, device=args.engine_device, threads=args.threads,
                           backend=args.backend, precision=args.precision, cuda_graphs=args.cuda_graphs)
    except (BundleError, OSError) as exc:
        raise _Refused(f"cannot load bundle {args.bundle}: {exc}") from None
    except (BackendError, ValueError) as exc:  # e.g. --backend torch on a bundle without programs
        raise _Refused(f"cannot open the engine: {exc}") from None


def _open_audition(args: argparse.Namespace):
    from bridge.audition import Audition, parse_device
    audition = Audition(parse_device(args.device))
    if not audition.available:
        wanted = args.audition or args.device is not None
        print(f"msanii-osc: {'ERROR' if wanted else 'note'}: audition unavailable: {audition.error}. "
              "The server runs without it (/msanii/play answers fail).", file=sys.stderr)
    return audition


def _bind(args: argparse.Namespace, engine, paths, audition, specs: list | None, limits: Limits):
    from bridge.server import OscBridge
    from engine.serving import WorkerStartError
    try:
        return OscBridge(engine, paths, host=args.host, port=args.port, reply_port=args.reply_port or None,
                         max_pending=args.queue, audition=audition, auto_play=args.audition, workers=specs,
                         max_batch=args.batch, limits=limits)
    except OSError as exc:
        raise _Refused(f"cannot bind {args.host}:{args.port}: {exc}") from None
    except WorkerStartError as exc:
        raise _Refused(f"cannot start the engine workers: {exc}") from None


def _serve(bridge, args: argparse.Namespace, specs: list | None, paths) -> int:
    """Serve until SIGINT/SIGTERM, then cancel the running job and close."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    bridge.start()
    host, port = bridge.address
    replies = f"reply port {args.reply_port}" if args.reply_port else "replies to the sender"
    where = (f"{len(specs)} worker process{'es' if len(specs) > 1 else ''} ({bridge.engine.device}, "
             f"{specs[0].threads} thread{'s' if specs[0].threads > 1 else ''} each)" if specs
             else f"{bridge.engine.device} in the server process")
    print(f"msanii-osc: serving {bridge.engine.name} on {where} at udp://{host}:{port} ({replies}); "
          f"output {paths.output_root}", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    print("msanii-osc: shutting down (cancelling the running job)", file=sys.stderr, flush=True)
    bridge.close()
    print("msanii-osc: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
