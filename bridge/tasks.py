"""Dispatch table: one entry per job address, mapping validated OSC arguments to one engine call.

Each `TaskSpec` has
- `parse(args, ctx) -> dict`: checks counts/types/ranges, resolves input paths and holds the request to the
  server's limits (input files by their header only; on the server thread; cheap), so work that would run past a
  limit is refused before it is accepted;
- `run(engine, params, settings, progress) -> RenderResult`: the engine call (on the job worker thread only);
- `available(engine) -> str | None`: why the task cannot run with this engine build, or None.
A task whose engine code has not landed answers `/msanii/fail <id> "not available: ..."`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pathlib import Path

from bridge import protocol as p
from bridge.paths import PathPolicy
from bridge.settings import RenderSettings
from engine.limits import Limits

MAX_REGIONS = 64


@dataclass(frozen=True)
class ParseContext:
    paths: PathPolicy
    settings: RenderSettings
    max_seconds: float  # the engine's longest single render (engine.render.max_clip_seconds)
    limits: Limits = Limits()

    @property
    def longest(self) -> float:
        """The longest generate or loop: the engine's longest render, or less if the server's limit is lower."""
        cap = self.limits.max_render_seconds
        return self.max_seconds if cap is None else min(self.max_seconds, cap)

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
    from engine.limits import read_header
    return _limited(read_header, path).seconds

@dataclass(frozen=True)
class TaskSpec:
    address: str
    usage: str
    parse: Callable[[Sequence[Any], ParseContext], dict]
    run: Callable[[Any, dict, RenderSettings, Callable[[float], None]], Any]
    available: Callable[[Any], str | None]
    # Batching (OscBridge max_batch > 1): jobs whose key is equal (not None) may render as one batch through
    # run_batch(engine, [params], settings, progress) -> [result per job].
    batch_key: Callable[[dict, RenderSettings], Any] | None = None
    run_batch: Callable[[Any, list[dict], RenderSettings, Callable[[float], None]], list[Any]] | None = None


def _sampling(settings: RenderSettings) -> dict:
    return {"steps": settings.steps, "sampler": settings.sampler, "gl_iters": settings.gl_iters}


def _seed_at(args: Sequence[Any], index: int) -> int | None:
    return p.seed(args[index]) if len(args) > index else None


def _engine_has(name: str) -> Callable[[Any], str | None]:
    def check(engine: Any) -> str | None:
        return None if callable(getattr(engine, name, None)) else f"not available: this engine has no {name}"
    return check


def _task_function(module: str, name: str) -> Callable[..., Any] | None:
    """The engine's Python API `engine.tasks.<module>.<name>`, or None when this engine build lacks it."""
    try:
        mod = importlib.import_module(f"engine.tasks.{module}")
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def _task_available(module: str) -> Callable[[Any], str | None]:
    def check(engine: Any) -> str | None:
        return None if _task_function(module, module) else f"not available: engine.tasks.{module} is missing"
    return check


def _layout(settings: RenderSettings) -> dict:
    """Output container for edits: the input's own unless the client chose one with /msanii/set."""
    depth = {32: "32f"}.get(settings.bit_depth, settings.bit_depth)
    return {"format": settings.format, "bit_depth": depth}


def _tempo(settings: RenderSettings) -> Any:
    from engine.regions import Tempo
    return Tempo(settings.bpm, settings.beats_per_bar, settings.beat_unit)


# ---- generate -------------------------------------------------------------------------------------------------
def parse_generate(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 2, 3, "/msanii/generate <id> <seconds> [seed]")
    seconds = p.number(args[1], "seconds", 0.0, ctx.longest, lo_open=True)
    return {"seconds": seconds, "seed": _seed_at(args, 2)}


def run_generate(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    return engine.generate(params["seconds"], seed=params["seed"], callback=progress, **_sampling(settings))


def generate_batch_key(params: dict, settings: RenderSettings) -> tuple:
    """Generations of one length with the same sampler settings can share their U-Net calls."""
    return ("generate", params["seconds"], *_sampling(settings).values())


def run_generate_batch(engine: Any, params: list[dict], settings: RenderSettings,
                       progress: Callable[[float], None]) -> list[Any]:
    return engine.generate_batch(params[0]["seconds"], [q["seed"] for q in params], callback=progress,
                                 **_sampling(settings))


# ---- region tasks (argument forms fixed here; engine calls wired as engine/tasks lands) -------------------------
def parse_audio2audio(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 3, 4, "/msanii/audio2audio <id> <input_path> <strength 0..1> [seed]")
    strength = p.number(args[2], "strength", 0.0, 1.0, lo_open=True)
    seed = _seed_at(args, 3)
    path = ctx.input_file(args[1], "input_path")
    ctx.render(_seconds_of(path), "this audio2audio")  # the whole file is rendered
    return {"input": path, "strength": strength, "seed": seed, "limits": ctx.limits}


def parse_interpolate(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 4, 6, "/msanii/interpolate <id> <path_a> <path_b> <ratio 0..1> [strength] [seed]")
    params = {"ratio": p.number(args[3], "ratio", 0.0, 1.0),
              "strength": p.number(args[4], "strength", 0.0, 1.0, lo_open=True) if len(args) > 4 else None,
              "seed": _seed_at(args, 5), "limits": ctx.limits,
              "input_a": ctx.input_file(args[1], "path_a"), "input_b": ctx.input_file(args[2], "path_b")}
    ctx.render(min(_seconds_of(params["input_a"]), _seconds_of(params["input_b"])), "this interpolation")
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
    return {"input": ctx.input_file(args[1], "input_path"), "regions": regions, "seed": seed, "limits": ctx.limits}


def parse_outpaint(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 4, 5, "/msanii/outpaint <id> <input_path> <seconds_left> <seconds_right> [seed]")
    left = p.number(args[2], "seconds_left", 0.0)
    right = p.number(args[3], "seconds_right", 0.0)
    if left == 0 and right == 0:
        raise p.RequestError("nothing to outpaint: seconds_left and seconds_right are both 0")
    ctx.render(left + right, "this outpaint")
    seed = _seed_at(args, 4)
    return {"input": ctx.input_file(args[1], "input_path"), "left": left, "right": right, "seed": seed,
            "limits": ctx.limits}


LOOP_UNITS = ("s", "seconds", "bars", "beats")


def parse_loop(args: Sequence[Any], ctx: ParseContext) -> dict:
    p.count(args, 2, 4, "/msanii/loop <id> <length> [s|bars|beats] [seed]")
    length = p.number(args[1], "length", 0.0, lo_open=True)
    unit, rest = "s", list(args[2:])
    if rest and isinstance(rest[0], str):
        unit = p.choice(rest.pop(0), "unit", LOOP_UNITS)
    if len(rest) > 1:
        raise p.RequestError("expected /msanii/loop <id> <length> [s|bars|beats] [seed]")
    seed = p.seed(rest[0]) if rest else None
    s = ctx.settings
    seconds = {"s": length, "seconds": length, "bars": length * s.seconds_per_bar(),
               "beats": length * s.seconds_per_bar() / s.beats_per_bar}[unit]
    if seconds > ctx.longest + p.float32_slack(ctx.longest):
        raise p.RequestError(f"loop of {seconds:.2f} s is longer than the {p.limit_text(ctx.longest)} s maximum")
    return {"seconds": seconds, "length": length, "unit": unit, "seed": seed}


def run_audio2audio(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    return _task_function("audio2audio", "audio2audio")(
        engine, params["input"], params["strength"], seed=params["seed"], callback=progress,
        limits=params["limits"], **_sampling(settings), **_layout(settings))


def run_interpolate(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    extra = {} if params["strength"] is None else {"strength": params["strength"]}
    return _task_function("interpolate", "interpolate")(
        engine, params["input_a"], params["input_b"], params["ratio"], seed=params["seed"], callback=progress,
        limits=params["limits"], **extra, **_sampling(settings), **_layout(settings))


def run_inpaint(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    return _task_function("inpaint", "inpaint")(
        engine, params["input"], params["regions"], seed=params["seed"], callback=progress,
        limits=params["limits"], **_sampling(settings), **_layout(settings))


def run_outpaint(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    return _task_function("outpaint", "outpaint")(
        engine, params["input"], params["left"], params["right"], seed=params["seed"], callback=progress,
        limits=params["limits"], **_sampling(settings), **_layout(settings))


def run_loop(engine: Any, params: dict, settings: RenderSettings, progress: Callable[[float], None]) -> Any:
    from engine.regions import BarsLength
    length = {"bars": lambda n: BarsLength(n), "beats": lambda n: BarsLength(0.0, n)}.get(
        params["unit"], float)(params["length"])
    return _task_function("loop", "loop")(engine, length, tempo=_tempo(settings), seed=params["seed"],
                                          callback=progress, **_sampling(settings))


TASKS: dict[str, TaskSpec] = {
    spec.address: spec
    for spec in (
        TaskSpec("/msanii/generate", "<id> <seconds> [seed]", parse_generate, run_generate,
                 _engine_has("generate"), generate_batch_key, run_generate_batch),
        TaskSpec("/msanii/audio2audio", "<id> <input_path> <strength> [seed]", parse_audio2audio, run_audio2audio,
                 _task_available("audio2audio")),
        TaskSpec("/msanii/interpolate", "<id> <path_a> <path_b> <ratio> [strength] [seed]", parse_interpolate,
                 run_interpolate, _task_available("interpolate")),
        TaskSpec("/msanii/inpaint", "<id> <input_path> <start> <end> [...] [seed]", parse_inpaint, run_inpaint,
                 _task_available("inpaint")),
        TaskSpec("/msanii/outpaint", "<id> <input_path> <left_s> <right_s> [seed]", parse_outpaint, run_outpaint,
                 _task_available("outpaint")),
        TaskSpec("/msanii/loop", "<id> <length> [s|bars|beats] [seed]", parse_loop, run_loop,
                 _task_available("loop")),
    )
}
