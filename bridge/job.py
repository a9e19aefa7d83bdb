"""The job payload: what the OSC server hands the job side for one accepted request, and how it is rendered.

Kept apart from the server so that a worker process, which unpickles a `JobRequest` and calls `render_request`,
imports neither the OSC server nor its sockets. The task travels by name and is looked up in the worker's own
registry (engine.tasks): its params are plain data (paths, numbers, engine.limits.Limits, engine.regions.Tempo).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bridge.replies import Address
from bridge.settings import RenderSettings


@dataclass
class JobRequest:
    task: str  # the engine task's registered name
    params: dict  # its params, checked by the task's OSC form and completed by bridge.tasks.settings_params
    settings: RenderSettings  # the client's settings at submit time (output container, progress rate)
    output_dir: Path
    reply_to: Address
    received_at: float
    last_progress_at: float = -1.0
    last_fraction: float = -1.0


def render_request(engine: Any, request: JobRequest, progress: Callable[[float], None]) -> Any:
    """Render one job with `engine` (on the job thread, or inside a worker process): the `RenderResult`."""
    from engine.tasks import get_task  # here, not at import: the server process in worker mode loads no engine
    progress(0.0)
    return get_task(request.task).run(engine, request.params, progress)


def render_batch(engine: Any, requests: list[JobRequest], progress: Callable[[float], None]) -> list[Any]:
    """Render jobs of one task that differ only in their seeds as one batch: one result per request."""
    from engine.tasks import get_task
    return get_task(requests[0].task).run_batch(engine, [r.params for r in requests], progress)


def batch_key(request: JobRequest) -> Any:
    """Jobs with equal keys may share a batch: the same task and params but for the seed (None: never batched;
    the server asks only for tasks that batch). Each job still writes with its own format and folder."""
    key = (request.task, tuple(sorted((k, v) for k, v in request.params.items() if k != "seed")))
    try:
        hash(key)
    except TypeError:  # a param that cannot be hashed (a list of regions): render alone
        return None
    return key
