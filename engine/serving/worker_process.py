"""Inside an engine worker process (see engine.serving.workers): which device and threads it uses, and its job loop.

A worker loads its own `Engine`, says "ready" (or why it could not start) over its pipe, then serves jobs one at a
time: ("job", seq, request) in; ("progress", seq, fraction) after every sampler step and phase iteration, then one
of ("done", seq, result), ("failed", seq, reason), ("cancelled", seq) out. Cancellation is a shared integer: when
it equals the running job's `seq`, the next progress call raises `Cancelled` (so it stops within one step).
This module imports no torch or onnxruntime at load time, so "cuda:N" can be pinned before either starts.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from engine.serving.jobs import Cancelled, describe_error

log = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"^(auto|cpu|(cuda|tensorrt)(:\d+)?)$")

Render = Callable[[Any, Any, Callable[[float], None]], Any]


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: the bundle it loads, its device ("cpu", "cuda", "cuda:1", "auto"), its CPU
    threads (onnxruntime intra-op and torch) and the engine's backend options (Engine.load)."""
    bundle_dir: str
    device: str = "cpu"
    threads: int = 1
    backend: str = "auto"
    precision: str | None = None
    cuda_graphs: bool = False


def plan_workers(bundle_dir: str | os.PathLike, workers: int, devices: Sequence[str] = ("cpu",),
                 threads: int | None = None, **engine_options: Any) -> list[WorkerSpec]:
    """`workers` specs over `devices` (round-robin). `threads` per worker defaults to the cores this process may
    use divided by the number of workers (at least 1), so N workers do not oversubscribe the CPU.
    `engine_options`: backend, precision, cuda_graphs, as WorkerSpec."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    devices = [d.strip() for d in devices if d.strip()]
    if not devices:
        raise ValueError("no device given")
    for device in devices:
        if not DEVICE_PATTERN.match(device):
            raise ValueError(f"unknown device {device!r}: use cpu, auto, cuda or cuda:N (comma-separated)")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads is None:
        from engine.backends.onnx import default_threads
        threads = max(1, default_threads() // workers)
    return [WorkerSpec(str(bundle_dir), devices[i % len(devices)], threads, **engine_options)
            for i in range(workers)]


def select_device(device: str) -> str:
    """Make "cuda:N" the only visible GPU of this process (before CUDA is initialised) and return the engine's
    device name. N counts within an inherited CUDA_VISIBLE_DEVICES, as torch and onnxruntime would."""
    kind, _, index = device.partition(":")
    if not index:
        return device
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and int(index) >= len(visible):
        raise ValueError(f"{device}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} lists only "
                         f"{len(visible)} device(s)")
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[int(index)] if visible else index
    return kind


def worker_main(spec: WorkerSpec, render: Render, describe: Callable[[Any], dict] | None, conn: Any,
                 cancel_seq: Any) -> None:
    """Entry point of a worker process: load the engine, then serve jobs until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the supervisor decides
    try:  # tqdm's default lock is a multiprocessing semaphore, which a killed worker would leak
        import tqdm
        tqdm.tqdm.set_lock(threading.RLock())
    except ImportError:
        pass
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(spec.threads)
    try:
        device = select_device(spec.device)
        from engine.api import Engine
        engine = Engine.load(spec.bundle_dir, device=device, threads=spec.threads, backend=spec.backend,
                             precision=spec.precision, cuda_graphs=spec.cuda_graphs)
        info = {"pid": os.getpid(), "name": engine.name, "device": engine.device}
        if describe is not None:
            info.update(describe(engine))
    except BaseException as exc:  # anything at start-up is reported, never a silent dead worker
        conn.send(("error", describe_error(exc)))
        return
    conn.send(("ready", info))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the supervisor is gone: nobody to render for
            return
        if message[0] != "job":
            return
        _, seq, request = message

        def progress(fraction: float, seq: int = seq) -> None:
            if cancel_seq.value == seq:
                raise Cancelled()
            conn.send(("progress", seq, float(fraction)))

        try:
            if cancel_seq.value == seq:
                raise Cancelled()
            reply = ("done", seq, render(engine, request, progress))
        except Cancelled:
            reply = ("cancelled", seq)
        except Exception as exc:
            log.debug("job %d failed:\n%s", seq, traceback.format_exc())
            reply = ("failed", seq, describe_error(exc))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # a result that cannot be pickled
            conn.send(("failed", seq, f"result could not be returned: {describe_error(exc)}"))
