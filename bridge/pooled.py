"""The bridge's side of engine worker processes (`msanii-osc --workers N`): what runs inside a worker, and what
the server knows about engines it does not hold itself.

The server process loads no model in this mode: each worker loads the bundle, describes its engine's tasks
(`describe_engine`: names, params, each one's longest render) and renders requests with
`bridge.job.render_request`. The server writes every output file itself (`finish`), so a worker that dies leaves
nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bridge.job import render_request
from engine.serving import Job, WorkerPool, WorkerSpec


@dataclass(frozen=True)
class PooledEngine:
    """Stand-in for `Engine` in the server process: name, device(s) and the workers' tasks."""
    name: str
    device: str  # "cpu", or the workers' devices joined: "cuda:0,cuda:1"
    tasks: dict = field(default_factory=dict)  # task name -> engine.tasks.TaskInfo


def describe_engine(engine: Any) -> dict:
    """Run in each worker after loading: what the server needs to validate requests without an engine."""
    from engine.tasks import describe_tasks
    return {"tasks": describe_tasks(engine)}


def start_pool(specs: Sequence[WorkerSpec], finish: Callable[[Job, Any], Any], max_pending: int
               ) -> tuple[WorkerPool, PooledEngine]:
    """Start the workers (all load their engine; `WorkerStartError` if one cannot) and describe them."""
    pool = WorkerPool(render_request, specs, finish=finish, describe=describe_engine, max_pending=max_pending,
                      name="msanii-worker")
    info = pool.info
    # "cuda:1" as asked; "auto" as the worker resolved it ("cpu" or "cuda")
    devices = list(dict.fromkeys(spec.device if ":" in spec.device else str(info.get("device", spec.device))
                                 for spec in specs))
    engine = PooledEngine(name=str(info.get("name", "?")), device=",".join(devices), tasks=dict(info["tasks"]))
    return pool, engine
