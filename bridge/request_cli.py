"""`msanii-request`: one request to a running `msanii-osc`, blocking until the clip is written.

stdout gets the rendered file's absolute path and nothing else (so a DAW script can read it); stderr gets
progress (a tqdm bar on a terminal, plain `msanii-request: ...` lines otherwise) and errors, one line each.
Exit codes: 0 done, 1 the server's /msanii/fail (its reason is printed), 2 bad arguments or input files,
3 no server answered, 130 cancelled (Ctrl-C sends /msanii/cancel first).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from bridge.client import Cancelled, ClientError, Done, MsaniiClient, NoServer, RequestFailed
from bridge.settings import BIT_DEPTHS, FORMATS
from engine.samplers import SAMPLER_NAMES

EXIT_FAIL, EXIT_USAGE, EXIT_NO_SERVER, EXIT_CANCELLED = 1, 2, 3, 130
DEFAULT_WORK_DIR = Path.home() / "msanii-output" / "msanii-request"  # inside msanii-osc's default output root
# flag -> /msanii/set key: server-wide settings sent before the job (docs/osc.md)
SETTINGS = {"steps": "steps", "sampler": "sampler", "gl_iters": "gl_iters", "format": "format",
            "bit_depth": "bit_depth", "bpm": "bpm", "beat_guidance": "beat_guidance"}


def _region(text: str) -> tuple[float, float]:
    try:
        start, end = (float(x) for x in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"region must be START-END in seconds (e.g. 12.5-16), got {text!r}")
    return start, end


def _span(text: str) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in text.split(":", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"span must be START:END in samples (e.g. 48000:240000), got {text!r}")
    return start, end


def _length(text: str) -> tuple[float, str]:
    """Loop length: `8` or `8s` seconds, `4b` bars, `16q` beats (as msanii-render's --length)."""
    units = {"s": "s", "b": "bars", "q": "beats"}
    unit = units.get(text[-1:].lower())
    try:
        return float(text[:-1] if unit else text), unit or "s"
    except ValueError:
        raise argparse.ArgumentTypeError(f"length must be seconds (8), bars (4b) or beats (16q), got {text!r}")


def _add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--host", default="127.0.0.1", help="msanii-osc address (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=9000, help="msanii-osc request port (default 9000)")
    sp.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for the server to answer (default 5; also how long a silent server "
                         "has to answer a ping during a long job)")


def _add_job(sp: argparse.ArgumentParser, inputs: bool = False) -> None:
    _add_common(sp)
    sp.add_argument("--id", help="job id (default: the verb and a random suffix); names the output file")
    sp.add_argument("--seed", type=int, help="seed (default: random)")
    sp.add_argument("--deadline", type=float, help="cancel the job if it has not finished after this many seconds")
    sp.add_argument("--pcm", type=Path, metavar="FILE",
                    help="also write the clip as raw float32 (MSPCM1, for Lua hosts such as Ardour); never "
                         "replaces an existing file")
    sp.add_argument("--pcm-rate", type=int, metavar="HZ", help="resample the --pcm copy to this rate")
    g = sp.add_argument_group("server-wide render settings (sent with /msanii/set before the job; they stay set)")
    g.add_argument("--steps", type=int)
    g.add_argument("--sampler", choices=SAMPLER_NAMES)
    g.add_argument("--gl-iters", type=int)
    g.add_argument("--format", choices=FORMATS)
    g.add_argument("--bit-depth", type=int, choices=BIT_DEPTHS)
    g.add_argument("--bpm", type=float, help="tempo: bar/beat lengths, and the beat a tempo-following bundle plays")
    g.add_argument("--beat-guidance", type=float, metavar="W",
                   help="how strictly a tempo-following bundle holds --bpm (1 plain; default: the bundle's)")
    if inputs:
        sp.add_argument("--in", dest="inputs", type=Path, action="append", required=True, metavar="FILE",
                        help="input audio; repeat it to stack one-channel files (a DAW's take%%L/take%%R) as "
                             "channels")
        sp.add_argument("--span", type=_span, metavar="START:END",
                        help="use only samples START..END of the input (a region's audio with its context)")
        sp.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="where a stacked or cut input is written: a folder the server may read "
                             f"(its --allow-input or output folder; default {DEFAULT_WORK_DIR})")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="msanii-request", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    sp = sub.add_parser("generate", help="new music")
    sp.add_argument("--seconds", type=float, required=True)
    _add_job(sp)
    sp = sub.add_parser("audio2audio", help="re-render a file in the model's style")
    sp.add_argument("--strength", type=float, required=True, help="0 < strength <= 1")
    _add_job(sp, inputs=True)
    sp = sub.add_parser("interpolate", help="blend two files")
    sp.add_argument("--a", type=Path, required=True)
    sp.add_argument("--b", type=Path, required=True)
    sp.add_argument("--ratio", type=float, required=True, help="A's share, 0..1")
    sp.add_argument("--strength", type=float, default=0.5, help="noise level the mix starts from (default 0.5)")
    _add_job(sp)
    sp = sub.add_parser("inpaint", help="regenerate regions of a file")
    sp.add_argument("--region", type=_region, action="append", required=True, metavar="START-END",
                    help="seconds from the start of the (spanned) input; repeatable")
    _add_job(sp, inputs=True)
    sp = sub.add_parser("outpaint", help="extend a file on either side")
    sp.add_argument("--left", type=float, default=0.0, help="seconds to add before (default 0)")
    sp.add_argument("--right", type=float, default=0.0, help="seconds to add after (default 0)")
    _add_job(sp, inputs=True)
    sp = sub.add_parser("loop", help="a seamless loop")
    sp.add_argument("--length", type=_length, required=True, help="seconds (8), bars (4b) or beats (16q)")
    _add_job(sp)
    sp = sub.add_parser("status", help="the server's state, queue and counters")
    _add_common(sp)
    sp = sub.add_parser("cancel", help="cancel a queued or running job by its id")
    sp.add_argument("job_id")
    _add_common(sp)
    return ap


def _job_arguments(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The OSC address and the arguments after the job id; inputs are stacked/cut here first."""
    def one_input(stem: str) -> str:
        from bridge.handoff import prepare_input  # numpy/soundfile (0.4 s) only for verbs that read files
        return str(prepare_input(args.inputs, args.work_dir, args.span, stem))

    seed = [] if args.seed is None else [args.seed]
    stem = args.id or args.verb
    if args.verb == "generate":
        return "/msanii/generate", [args.seconds, *seed]
    if args.verb == "audio2audio":
        return "/msanii/audio2audio", [one_input(stem), args.strength, *seed]
    if args.verb == "interpolate":
        return "/msanii/interpolate", [str(args.a.expanduser().resolve()), str(args.b.expanduser().resolve()),
                                       args.ratio, args.strength, *seed]
    if args.verb == "inpaint":
        return "/msanii/inpaint", [one_input(stem), *[x for region in args.region for x in region], *seed]
    if args.verb == "outpaint":
        return "/msanii/outpaint", [one_input(stem), args.left, args.right, *seed]
    if args.verb == "loop":
        length, unit = args.length
        return "/msanii/loop", [length, unit, *seed]
    raise AssertionError(args.verb)


class Progress:
    """tqdm on a terminal; otherwise a plain line per 10 % (a DAW script reads these)."""

    def __init__(self, job_id: str, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.bar = None
        self.last = -1
        if stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=100, desc=job_id, unit="%", file=stream, leave=False,
                            bar_format="{desc} {bar} {n_fmt}% {elapsed}")

    def __call__(self, kind: str, value: Any) -> None:
        if kind == "accepted":
            self._say(f"accepted ({value} job{'s' if value != 1 else ''} ahead)")
        elif kind == "progress":
            percent = int(round(100 * value))
            if self.bar is not None:
                self.bar.update(percent - self.bar.n)
            elif percent >= self.last + 10 or (percent == 100 and self.last != 100):
                self.last = percent
                self._say(f"progress {percent}%")

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(f"msanii-request: {text}", file=self.stream)
        else:
            print(f"msanii-request: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_job(client: MsaniiClient, args: argparse.Namespace, err: Callable[[str], None]) -> int:
    for flag, key in SETTINGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            client.set(key, value)
    address, job_args = _job_arguments(args)
    job_id = args.id or f"{args.verb}-{secrets.token_hex(3)}"
    progress = Progress(job_id)
    t0 = time.monotonic()
    try:
        done: Done = client.request(address, job_id, job_args, on_event=progress, deadline=args.deadline)
    finally:
        progress.close()
    if args.pcm is not None:
        from bridge.handoff import write_pcm
        write_pcm(done.path, args.pcm, args.pcm_rate)
    tempo = f" at {done.bpm:g} BPM" if done.bpm > 0 else ""
    err(f"done in {time.monotonic() - t0:.2f} s: {done.seconds:.2f} s of audio, seed {done.seed}{tempo}")
    print(done.path, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def err(text: str) -> None:
        print(f"msanii-request: {text}", file=sys.stderr, flush=True)

    try:
        with MsaniiClient(args.host, args.port, args.timeout) as client:
            if args.verb == "status":
                for key, value in client.status().items():
                    print(f"{key} {value}")
                return 0
            if args.verb == "cancel":
                client.cancel(args.job_id)
                err(f"cancelled {args.job_id}")
                return 0
            return _run_job(client, args, err)
    except Cancelled as exc:
        err(str(exc))
        return EXIT_CANCELLED
    except RequestFailed as exc:
        err(f"failed: {exc.reason}")
        return EXIT_FAIL
    except NoServer as exc:
        err(str(exc))
        return EXIT_NO_SERVER
    except (ValueError, OSError) as exc:  # bridge.handoff.HandoffError included
        err(str(exc))
        return EXIT_USAGE
    except ClientError as exc:
        err(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:  # before a job was sent (connecting, preparing input)
        err("interrupted")
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
