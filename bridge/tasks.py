"""How each engine task is requested over OSC: `/msanii/<task name> <id> ...`, its arguments turned into the
task's params (engine.tasks), checked on the server thread before the job is accepted.

The tasks themselves come from the engine (`engine.tasks.describe_tasks`: names, params, longest render; worker
processes send it to the server, which loads no model). The built-in tasks keep the argument forms of
docs/osc.md (`FORMS`, a contract with users' patches); any other task is served with `generic_form`, built from
its declared params, so a new engine task needs no change here. Every form's `parse(args, ctx) -> params` checks
counts, types and ranges, resolves input paths and holds the request to the server's limits (input files by
their header only), so work that would run past a limit is refused before it is accepted. The sampler settings,
the output container and the tempo a client chose with /msanii/set join the params in `settings_params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bridge import protocol as p
from bridge.paths import PathPolicy
from bridge.settings import RenderSettings
from engine.limits import Limits, read_header
from engine.regions import BarsLength, length_seconds

MAX_REGIONS = 64
LOOP_UNITS = ("s", "seconds", "bars", "beats")


@dataclass(frozen=True)
class ParseContext:
    paths: PathPolicy
    settings: RenderSettings
    max_seconds: float | None  # the task's longest single render on this engine (engine.tasks.Task.max_seconds)
    limits: Limits = Limits()

    @property
    def longest(self) -> float | None:
        """The longest render this request may ask for: the task's own, or less if the server's limit is lower."""
        cap = self.limits.max_render_seconds
        if self.max_seconds is None or cap is None:
            return self.max_seconds if cap is None else cap
        return min(self.max_seconds, cap)

    def input_file(self, client_path: Any, name: str) -> Path:
        """A client path resolved inside the allowed folders, its header within the input limit."""
        path = self.paths.resolve_input(p.string(client_path, name))
        _limited(self.limits.check_input_file, path)
        return path

    def render(self, seconds: float, what: str) -> None:
        _limited(self.limits.check_render, seconds, what)


def _limited(check: Callable[..., Any], *args: Any) -> Any:
    """Run an engine limit check; its refusal (or an unreadable header) becomes the request's fail reason."""
    try:
        return check(*args)
    except ValueError as exc:
        raise p.RequestError(str(exc)) from None


def _seconds_of(path: Path) -> float:
    return _limited(read_header, path).seconds


def _seed_at(args: Sequence[Any], index: int) -> int | None:
    return p.seed(args[index]) if len(args) > index else None


@dataclass(frozen=True)
class OscForm:
    """One job address: its usage text (after the address) and its parser."""
    usage: str
    parse: Callable[[Sequence[Any], ParseContext], dict]


# ---- the built-in tasks' argument forms (docs/osc.md) -------------------------------------------------------------

def parse_generate(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 2, 3, "/msanii/generate <id> <seconds> [seed]")
    seconds = p.number(args[1], "seconds", 0.0, ctx.longest, lo_open=True)
    return {"seconds": seconds, "seed": _seed_at(args, 2)}


def parse_audio2audio(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 3, 4, "/msanii/audio2audio <id> <input_path> <strength 0..1> [seed]")
    strength = p.number(args[2], "strength", 0.0, 1.0, lo_open=True)
    seed = _seed_at(args, 3)
    path = ctx.input_file(args[1], "input_path")
    ctx.render(_seconds_of(path), "this audio2audio")  # the whole file is rendered
    return {"source": path, "strength": strength, "seed": seed}


def parse_interpolate(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 4, 6, "/msanii/interpolate <id> <path_a> <path_b> <ratio 0..1> [strength] [seed]")
    params = {"ratio": p.number(args[3], "ratio", 0.0, 1.0), "seed": _seed_at(args, 5)}
    if len(args) > 4:
        params["strength"] = p.number(args[4], "strength", 0.0, 1.0, lo_open=True)
    params.update(source_a=ctx.input_file(args[1], "path_a"), source_b=ctx.input_file(args[2], "path_b"))
    ctx.render(min(_seconds_of(params["source_a"]), _seconds_of(params["source_b"])), "this interpolation")
    return params


def parse_inpaint(args: Sequence[Any], ctx: ParseContext) -> dict:
    usage = "/msanii/inpaint <id> <input_path> <start> <end> [<start> <end> ...] [seed]"
    if len(args) < 4:
        p.count(args, 4, 4 + 2 * MAX_REGIONS, usage)
    numbers = list(args[2:])
    seed = None
    if len(numbers) % 2 == 1:
        seed = p.seed(numbers.pop())
    if len(numbers) // 2 > MAX_REGIONS:
        raise p.RequestError(f"at most {MAX_REGIONS} regions per request")
    regions = []
    for i in range(0, len(numbers), 2):
        start = p.number(numbers[i], f"region {i // 2 + 1} start", 0.0)
        end = p.number(numbers[i + 1], f"region {i // 2 + 1} end", 0.0)
        if end <= start:
            raise p.RequestError(f"region {i // 2 + 1} is empty or reversed: {start:g}..{end:g} s")
        regions.append((start, end))
    ctx.render(sum(end - start for start, end in regions), "this inpaint")
    return {"source": ctx.input_file(args[1], "input_path"), "regions": regions, "seed": seed}


def parse_outpaint(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 4, 5, "/msanii/outpaint <id> <input_path> <seconds_left> <seconds_right> [seed]")
    left = p.number(args[2], "seconds_left", 0.0)
    right = p.number(args[3], "seconds_right", 0.0)
    if left == 0 and right == 0:
        raise p.RequestError("nothing to outpaint: seconds_left and seconds_right are both 0")
    ctx.render(left + right, "this outpaint")
    seed = _seed_at(args, 4)
    return {"source": ctx.input_file(args[1], "input_path"), "left": left, "right": right, "seed": seed}


def parse_loop(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 2, 4, "/msanii/loop <id> <length> [s|bars|beats] [seed]")
    number = p.number(args[1], "length", 0.0, lo_open=True)
    unit, rest = "s", list(args[2:])
    if rest and isinstance(rest[0], str):
        unit = p.choice(rest.pop(0), "unit", LOOP_UNITS)
    if len(rest) > 1:
        raise p.RequestError("expected /msanii/loop <id> <length> [s|bars|beats] [seed]")
    seed = p.seed(rest[0]) if rest else None
    length = {"bars": BarsLength(number), "beats": BarsLength(0.0, number)}.get(unit, number)
    seconds = length_seconds(length, ctx.settings.tempo())  # the engine's own bars -> seconds
    longest = ctx.longest
    if longest is not None and seconds > longest + p.float32_slack(longest):
        raise p.RequestError(f"loop of {seconds:.2f} s is longer than the {p.limit_text(longest)} s maximum")
    return {"length": length, "seed": seed}


FORMS: dict[str, OscForm] = {
    "generate": OscForm("<id> <seconds> [seed]", parse_generate),
    "audio2audio": OscForm("<id> <input_path> <strength> [seed]", parse_audio2audio),
    "interpolate": OscForm("<id> <path_a> <path_b> <ratio> [strength] [seed]", parse_interpolate),
    "inpaint": OscForm("<id> <input_path> <start> <end> [...] [seed]", parse_inpaint),
    "outpaint": OscForm("<id> <input_path> <left_s> <right_s> [seed]", parse_outpaint),
    "loop": OscForm("<id> <length> [s|bars|beats] [seed]", parse_loop),
}


# ---- any other task: positional arguments from its declared params -----------------------------------------------

def generic_form(info: Any) -> OscForm:
    """`/msanii/<name> <id> <required params> [optional params] [seed]` from a TaskInfo: float/int/str/path params
    in declaration order (numbers as numbers, paths inside the allowed folders), then the seed if it takes one."""
    simple = [q for q in info.params if q.kind in ("float", "int", "str", "path")]
    required = [q for q in simple if q.required]
    optional = [q for q in simple if not q.required]
    has_seed = any(q.kind == "seed" for q in info.params)
    usage = " ".join(["<id>", *(f"<{q.name}>" for q in required), *(f"[{q.name}]" for q in optional),
                      *(["[seed]"] if has_seed else [])])

    def parse(args: Sequence[Any], ctx: ParseContext) -> dict:
        p.count(args, 1 + len(required), 1 + len(simple) + has_seed, f"/msanii/{info.name} {usage}")
        params: dict = {}
        for q, value in zip(simple, args[1:]):
            if q.kind == "path":
                params[q.name] = ctx.input_file(value, q.name)
            elif q.kind == "str":
                params[q.name] = p.choice(value, q.name, q.choices) if q.choices else p.string(value, q.name)
            elif q.kind == "int":
                params[q.name] = p.integer(value, q.name, -2**31, 2**31 - 1)
            else:
                params[q.name] = p.number(value, q.name)
        if has_seed:
            params["seed"] = _seed_at(args, 1 + len(simple))
        return params

    return OscForm(usage, parse)


def form_for(info: Any) -> OscForm:
    return FORMS.get(info.name) or generic_form(info)


def settings_params(info: Any, settings: RenderSettings, limits: Limits) -> dict:
    """What the client's /msanii/set settings and the server's limits give a task, for the params it declares:
    sampler settings, the output container of an edit (the input's own unless chosen), the tempo, the limits."""
    names = {q.name for q in info.params}
    given = {"steps": settings.steps, "sampler": settings.sampler, "gl_iters": settings.gl_iters,
             "format": settings.format, "bit_depth": settings.bit_depth, "limits": limits}
    params = {name: value for name, value in given.items() if name in names}
    if "tempo" in names:  # bar lengths were converted while parsing; what is left is the beat to follow
        params["tempo"] = settings.chosen_tempo()
    return params
