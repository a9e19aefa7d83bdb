"""The task interface: what every task declares so that the Python API, `msanii-render` and the OSC bridge can
serve it without knowing it.

A `Task` names itself, lists its `Param`s and points at its Python function, `function(engine, **params,
callback=None) -> RenderResult`; `Task.run(engine, params, callback)` checks the params against the declaration
and calls it. Params are plain data (no functions), so a worker process can describe its tasks to the OSC server,
which loads no model, and the server can build a request form from them.

Param kinds, and how the front ends offer them when a task has no hand-written form:
    "float" | "int" | "str"   a number or a word (`--name V` on the command line; one OSC argument)
    "path"                    an input audio file (read inside the bridge's allowed folders)
    "seed" | "sampling"       the shared sampler settings: the command line's sampling options, /msanii/set on OSC
    "limits"                  the job's engine.limits.Limits, from --max-*-seconds or the server's options
    "tempo"                   an engine.regions.Tempo, from --bpm/--time-signature or /msanii/set
    "layout"                  the container an edit is written in (format, bit depth): --format/--bit-depth,
                              /msanii/set format|bit_depth
    "output"                  where the Python call writes its file (front ends write it themselves)
    "object"                  Python API only (e.g. a callable); not offered by the command line or OSC
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.render import RenderResult

KINDS = ("float", "int", "str", "path", "seed", "sampling", "limits", "tempo", "layout", "output", "object")
SIMPLE_KINDS = ("float", "int", "str", "path")  # a front end can offer these generically


class _Required:
    """The default of a param that has none (one object: it pickles by name, so `is REQUIRED` holds in a worker)."""

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

Callback = Callable[[float], None]


class TaskError(ValueError):
    """A request a task cannot take: an unknown task or parameter, or a required one missing (the message names
    it and what is allowed)."""


@dataclass(frozen=True)
class Param:
    """One parameter of a task: its keyword name in the task's function, its kind (see the module docstring),
    default (REQUIRED: none), help text and, for "str", the allowed values."""
    name: str
    kind: str = "float"
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"param {self.name!r}: unknown kind {self.kind!r}: use one of {', '.join(KINDS)}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Task:
    """One task. `function(engine, **params, callback=None)` is its Python API; `params` declares every keyword it
    takes but the callback. `edits_input`: the result is an edited copy of an input file (an EditResult, written
    from its native samples). `batch_function(engine, seeds=[...], **params, callback=None) -> [result per seed]`: jobs
    that differ only in their seed may render as one batch. `max_seconds(engine)`: the most audio one call can
    render, where the task has such a bound of its own (None: only the job's limits)."""
    name: str
    summary: str
    function: Callable[..., "RenderResult"]
    params: tuple[Param, ...] = ()
    description: str = ""
    edits_input: bool = False
    batch_function: Callable[..., list] | None = None
    max_seconds: Callable[["Engine"], float] | None = None

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} declares a parameter twice: {names}")
        if "callback" in names:
            raise ValueError(f"task {self.name!r}: the callback is passed by run(), not declared as a param")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def kinds(self, *kinds: str) -> tuple[Param, ...]:
        """This task's params of the given kinds, in declaration order."""
        return tuple(p for p in self.params if p.kind in kinds)

    def check(self, params: dict) -> dict:
        """`params` if every key is declared and every required param is present; TaskError names the problem."""
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise TaskError(f"{self.name} has no parameter {', '.join(map(repr, unknown))}; it takes "
                            f"{', '.join(p.name for p in self.params)}")
        missing = [p.name for p in self.params if p.required and p.name not in params]
        if missing:
            raise TaskError(f"{self.name} needs {', '.join(missing)}")
        return dict(params)

    def run(self, engine: "Engine", params: dict, callback: Callback | None = None) -> "RenderResult":
        """Render one result (k-diffusion style: the engine, the inputs, an optional progress callback)."""
        return self.function(engine, **self.check(params), callback=callback)

    def run_batch(self, engine: "Engine", params: list[dict], callback: Callback | None = None) -> list:
        """One result per params dict; they must differ only in "seed" (TaskError otherwise)."""
        if self.batch_function is None:
            raise TaskError(f"{self.name} does not render in batches")
        checked = [self.check(p) for p in params]
        shared = {k: v for k, v in checked[0].items() if k != "seed"}
        if any({k: v for k, v in p.items() if k != "seed"} != shared for p in checked):
            raise TaskError(f"a {self.name} batch may differ only in its seeds")
        return self.batch_function(engine, seeds=[p.get("seed") for p in checked], **shared, callback=callback)

    def describe(self) -> "TaskInfo":
        return TaskInfo(self.name, self.summary, self.params, self.description, self.edits_input,
                        self.batch_function is not None)


@dataclass(frozen=True)
class TaskInfo:
    """What a front end needs to know about a task without holding its code (picklable: a worker sends it to the
    OSC server). `max_seconds` is filled in for one engine by `describe_tasks`."""
    name: str
    summary: str
    params: tuple[Param, ...]
    description: str = ""
    edits_input: bool = False
    batches: bool = False
    max_seconds: float | None = None
