"""How each task is offered on the command line: its flags and how they become the task's params.

The built-in tasks keep the hand-written flags users' scripts rely on (`FORMS`); any other registered task gets
`generic_form`, built from its declared params (`--name VALUE` for each float/int/str/path param, plus the shared
sampling, tempo and limit options it declares), so a new task needs no change here.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.cli.options import add_input, add_sampling, add_tempo, limits_from, sampling_from, tempo_from
from engine.editing import CONTEXT_SECONDS, FADE_SECONDS
from engine.regions import parse_length, parse_region
from engine.render import PHASE_METHODS
from engine.samplers import SAMPLER_NAMES
from engine.tasks import Task
from engine.tasks.interpolate import MIXES
from engine.tasks.outpaint import CHUNK_SECONDS
from engine.tasks.outpaint import CONTEXT_SECONDS as OUTPAINT_CONTEXT_SECONDS


@dataclass(frozen=True)
class Form:
    """A subcommand's extra flags (`add`), its params from the parsed args (`params`) and its help text
    (`description`; empty: the task's own)."""
    add: Callable[[argparse.ArgumentParser], None]
    params: Callable[[argparse.Namespace], dict]
    description: str = ""


# ---- the built-in tasks' flags (a contract with users' scripts: change them only with the docs) ---------------

def _generate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, required=True, help="length in seconds (any positive number)")
    p.add_argument("--seed", type=int, help="random seed (default: fresh; printed so you can repeat a render)")
    p.add_argument("--steps", type=int,
                   help="sampler steps (default: the bundle's, 12 for the shipped model; paper DDIM: 200)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="dpmpp (fast), sde (its stochastic form, the shipped "
                   "model's) or ddim (the paper's); default: the bundle's")
    p.add_argument("--gl-iters", type=int, help="phase reconstruction iterations (default: the bundle's)")
    p.add_argument("--phase", choices=PHASE_METHODS, default="fast",
                   help="fast Griffin-Lim with the stereo channels linked (default), the same per channel "
                        "(independent), or torchaudio's (the paper's)")
    add_tempo(p)  # a beat-conditioned bundle follows it (default: a training piece's, drawn by the seed)


def _generate_params(args: argparse.Namespace) -> dict:
    return {"seconds": args.seconds, "phase": args.phase, **sampling_from(args, masked=False),
            "tempo": tempo_from(args), "limits": limits_from(args)}


def _audio2audio_flags(p: argparse.ArgumentParser) -> None:
    add_input(p)
    p.add_argument("--strength", type=float, required=True, help="0..1: how far from the input (e.g. 0.3-0.7)")
    p.add_argument("--region", action="append", metavar="START-END", help="only these regions (repeatable)")
    p.add_argument("--fade-ms", type=float, default=FADE_SECONDS * 1000, help="crossfade inside region edges")
    add_sampling(p, masked=False)
    p.add_argument("--jumps", type=int, help="resampling passes per late step (ddim only; default 1)")
    add_tempo(p)


def _audio2audio_params(args: argparse.Namespace) -> dict:
    return {"source": args.input, "strength": args.strength,
            "regions": [parse_region(r) for r in args.region] if args.region else None, "tempo": tempo_from(args),
            **sampling_from(args, masked=False), "jumps": args.jumps, "fade_ms": args.fade_ms,
            **_layout(args), "limits": limits_from(args)}


def _inpaint_flags(p: argparse.ArgumentParser) -> None:
    add_input(p)
    p.add_argument("--region", action="append", required=True, metavar="START-END",
                   help="seconds (12.5-16) or bar:beat (5:1-9:1, needs --bpm); repeat for more regions")
    p.add_argument("--fade-ms", type=float, default=FADE_SECONDS * 1000, help="crossfade inside each region edge")
    p.add_argument("--context", type=float, default=CONTEXT_SECONDS, help="seconds of audio the model sees each side")
    add_sampling(p)
    add_tempo(p)


def _inpaint_params(args: argparse.Namespace) -> dict:
    return {"source": args.input, "regions": [parse_region(r) for r in args.region], "tempo": tempo_from(args),
            **sampling_from(args), "fade_ms": args.fade_ms, "context_seconds": args.context, **_layout(args),
            "limits": limits_from(args)}


def _interpolate_flags(p: argparse.ArgumentParser) -> None:
    add_input(p, "--a", "input_a", "first")
    add_input(p, "--b", "input_b", "second")
    p.add_argument("--ratio", type=float, default=0.5, help="share of A, 0..1 (default 0.5)")
    p.add_argument("--strength", type=float, default=0.5, help="noise level to start from, 0..1 (default 0.5)")
    p.add_argument("--mix", choices=MIXES, default="slerp",
                   help="slerp (default: noise kept at the scheduled level) or linear (the paper's)")
    add_sampling(p, masked=False)


def _interpolate_params(args: argparse.Namespace) -> dict:
    return {"source_a": args.input_a, "source_b": args.input_b, "ratio": args.ratio, "strength": args.strength,
            "mix": args.mix, **sampling_from(args, masked=False), **_layout(args), "limits": limits_from(args)}


def _outpaint_flags(p: argparse.ArgumentParser) -> None:
    add_input(p)
    p.add_argument("--left", default="0", help="length to add before the start (default 0)")
    p.add_argument("--right", default="0", help="length to add after the end (default 0)")
    p.add_argument("--context", type=float, default=OUTPAINT_CONTEXT_SECONDS,
                   help="seconds of audio each window continues")
    p.add_argument("--chunk", type=float, default=CHUNK_SECONDS, help="new seconds per window")
    add_sampling(p)
    add_tempo(p)


def _outpaint_params(args: argparse.Namespace) -> dict:
    return {"source": args.input, "left": parse_length(args.left), "right": parse_length(args.right),
            "tempo": tempo_from(args), **sampling_from(args), "context_seconds": args.context,
            "chunk_seconds": args.chunk, **_layout(args), "limits": limits_from(args)}


def _loop_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--length", required=True, help="loop length: seconds (8) or bars (4b)")
    p.add_argument("--in", dest="input", type=Path, help="make the loop from this audio (its start)")
    p.add_argument("--strength", type=float, default=0.7, help="with --in: how far from the source (0..1)")
    add_sampling(p, masked=False)
    add_tempo(p)


def _loop_params(args: argparse.Namespace) -> dict:
    return {"length": parse_length(args.length), "tempo": tempo_from(args), **sampling_from(args, masked=False),
            "sample_rate": args.rate, "source": args.input, "strength": args.strength, "limits": limits_from(args)}


def _layout(args: argparse.Namespace) -> dict:
    return {"format": args.format, "bit_depth": args.bit_depth}


FORMS: dict[str, Form] = {
    "generate": Form(_generate_flags, _generate_params),
    "audio2audio": Form(_audio2audio_flags, _audio2audio_params,
                        "Noise the input's mel to --strength and denoise it back (paper 5.2). With --region only those "
                        "regions change; the rest is written bit-identical."),
    "inpaint": Form(_inpaint_flags, _inpaint_params,
                    "Regenerate regions of an audio file. Audio outside the regions is written bit-identical "
                    "(same rate, format and bit depth as the input unless --format/--bit-depth/--rate say otherwise)."),
    "interpolate": Form(_interpolate_flags, _interpolate_params,
                        "Noise both inputs' mels to --strength, mix them with --ratio (A's share) and denoise (paper "
                        "5.3). Output: the shorter input's length at A's rate and format."),
    "loop": Form(_loop_flags, _loop_params,
                 "Generate a loop whose last sample flows into its first. Length in seconds (8, 8s) or bars "
                 "(4b, 2:3 = 2 bars 3 beats, needs --bpm). With --in, the loop is made from that audio."),
    "outpaint": Form(_outpaint_flags, _outpaint_params,
                     "Extend an audio file (continue its end with --right, lead into it with --left). Lengths in "
                     "seconds (8, 8s) or bars (4b, 2:3 = 2 bars 3 beats, needs --bpm). The input's samples are "
                     "kept bit-identical between the extensions."),
}


# ---- any other task: flags from its declared params --------------------------------------------------------------

_TYPES = {"float": float, "int": int, "str": str, "path": Path}


def generic_form(task: Task) -> Form:
    """`--name VALUE` per simple param (required ones required), the sampling options if it takes a seed or
    sampler settings, the tempo options if it takes a tempo; layout and limits from the common options."""
    simple = task.kinds("float", "int", "str", "path")
    sampling = {p.name for p in task.kinds("seed", "sampling")}

    def add(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group(f"{task.name}")
        for param in simple:
            default = None if param.required else param.default
            shown = "" if param.required or default is None else f" (default {default})"
            g.add_argument("--" + param.name.replace("_", "-"), dest=param.name, type=_TYPES[param.kind],
                           required=param.required, default=default, choices=param.choices,
                           help=(param.help or param.name) + shown)
        if sampling:
            add_sampling(p, masked={"method", "jumps"} <= sampling)
        if task.kinds("tempo"):
            add_tempo(p)

    def params(args: argparse.Namespace) -> dict:
        out = {param.name: getattr(args, param.name) for param in simple}
        if sampling:
            out.update({k: v for k, v in sampling_from(args, {"method", "jumps"} <= sampling).items()
                        if k in sampling})
        if task.kinds("tempo"):
            out["tempo"] = tempo_from(args)
        if task.kinds("layout"):
            out.update({k: v for k, v in _layout(args).items() if task.param(k)})
        if task.kinds("limits"):
            out["limits"] = limits_from(args)
        return out

    return Form(add, params, task.description or task.summary)


def form_for(task: Task) -> Form:
    return FORMS.get(task.name) or generic_form(task)
