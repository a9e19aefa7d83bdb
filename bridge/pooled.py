"""The bridge's side of engine worker processes (`msanii-osc --workers N`): what runs inside a worker, and what
the server knows about engines it does not hold itself.

The server process loads no model in this mode: each worker loads the bundle, reports its name, device and which
tasks its engine build can run (`describe_engine`), and renders requests with `bridge.server.render_request`.
The server writes every output file itself (`finish`), so a worker that dies leaves nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bridge.tasks import TASKS
from engine.jobs import Job
from engine.workers import WorkerPool, WorkerSpec


@dataclass(frozen=True)
class PooledEngine:
    """Stand-in for `Engine` in the server process: name, device(s), longest render, unavailable tasks."""
    name: str
    device: str  # "cpu", or the workers' devices joined: "cuda:0,cuda:1"
    max_seconds: float  # the workers' engine's longest render (engine.render.max_clip_seconds)
    unavailable: dict = field(default_factory=dict)  # job address -> reason


def describe_engine(engine: Any) -> dict:
    """Run in each worker after loading: what the server needs to validate requests without an engine."""
    unavailable = {address: spec.available(engine) for address, spec in TASKS.items()}
    return {"max_seconds": float(engine.max_seconds),
            "unavailable": {address: why for address, why in unavailable.items() if why}}


def start_pool(specs: Sequence[WorkerSpec], finish: Callable[[Job, Any], Any], max_pending: int
               ) -> tuple[WorkerPool, PooledEngine]:
    """Start the workers (all load their engine; `WorkerStartError` if one cannot) and describe them."""
    from bridge.server import render_request
    pool = WorkerPool(render_request, specs, finish=finish, describe=describe_engine, max_pending=max_pending,
                      name="msanii-worker")
    info = pool.info
    # "cuda:1" as asked; "auto" as the worker resolved it ("cpu" or "cuda")
    devices = list(dict.fromkeys(spec.device if ":" in spec.device else str(info.get("device", spec.device))
                                 for spec in specs))
    engine = PooledEngine(name=str(info.get("name", "?")), device=",".join(devices),
                          max_seconds=float(info["max_seconds"]),
                          unavailable=dict(info.get("unavailable", {})))
    return pool, engine
