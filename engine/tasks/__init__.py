"""The task registry: every task the engine serves, one entry each; the Python API (`engine.api.render`),
`msanii-render` and the OSC bridge all find their tasks here and nowhere else.

A task is one module that defines a `Task` (engine.tasks.task: name, params, the function that renders it), plus
one entry in `BUILTIN` below. Shared pieces: engine.tasks.settings (the sampler settings and their check),
engine.tasks.finish (the info every task reports, EditResult, the optional write). Tasks built outside this
package (a plugin, a test) are added with `register(task)` before the front end starts.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.tasks import audio2audio, generate, inpaint, interpolate, loop, outpaint
from engine.tasks.task import REQUIRED, Param, Task, TaskError, TaskInfo

if TYPE_CHECKING:
    from engine.api import Engine

__all__ = ["BUILTIN", "REQUIRED", "Param", "Task", "TaskError", "TaskInfo", "describe_tasks", "get_task",
           "register", "task_names", "tasks"]

# In the order `msanii-render --help` lists them.
BUILTIN: tuple[Task, ...] = (generate.TASK, audio2audio.TASK, inpaint.TASK, interpolate.TASK, loop.TASK,
                             outpaint.TASK)

# The registry is the one piece of process-wide state in the engine, on purpose: a front end (CLI, OSC server,
# worker process) serves whatever is registered when it starts. It only grows, and a name is taken once.
_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add `task` to the registry (returned, so a module can write `TASK = register(Task(...))`)."""
    if not isinstance(task, Task):
        raise TypeError(f"register() takes an engine.tasks.Task, got {type(task).__name__}")
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise TaskError(f"a task named {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


for _task in BUILTIN:
    register(_task)


def tasks() -> tuple[Task, ...]:
    """Every registered task, built-in ones first."""
    return tuple(_REGISTRY.values())


def task_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_task(name: str) -> Task:
    """The registered task `name`; TaskError lists the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise TaskError(f"unknown task {name!r}: use one of {', '.join(_REGISTRY)}") from None


def describe_tasks(engine: "Engine") -> dict[str, TaskInfo]:
    """What front ends need to know of every task for this engine (picklable), with each one's longest render."""
    out = {}
    for task in tasks():
        info = task.describe()
        if task.max_seconds is not None:
            info = dataclasses.replace(info, max_seconds=float(task.max_seconds(engine)))
        out[task.name] = info
    return out
