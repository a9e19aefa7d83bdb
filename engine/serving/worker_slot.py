"""One supervised worker process of `engine.serving.WorkerPool`: start it, wait until its engine is loaded, stop it.

The pool decides when (start, restart, recycle); a slot only knows how, and what state its process is in.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from typing import Any, Callable

from engine.serving.jobs import Job
from engine.serving.worker_process import Render, WorkerSpec, worker_main

log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """A worker process could not load its engine; the message is the worker's own reason."""


@dataclass
class WorkerSlot:
    """One worker process and the supervisor thread that feeds it. `cancel_seq` is shared with the process: the
    sequence number of the job it should cancel."""
    index: int
    spec: WorkerSpec
    cancel_seq: Any
    process: Any = None
    conn: Any = None
    info: dict = field(default_factory=dict)
    job: Job | None = None
    seq: int = -1
    state: str = "starting"  # starting | idle | busy | restarting | dead | stopped
    restarts: int = 0
    error: str | None = None
    thread: threading.Thread | None = None

    def launch(self, ctx, render: Render, describe: Callable[[Any], dict] | None, name: str) -> None:
        """Start the process (it begins loading its engine at once; `await_ready` waits for it)."""
        parent_end, child_end = ctx.Pipe(duplex=True)
        self.cancel_seq.value = -1
        process = ctx.Process(target=worker_main, name=f"{name}-{self.index}",
                              args=(self.spec, render, describe, child_end, self.cancel_seq), daemon=True)
        process.start()
        child_end.close()  # only the child holds it now, so its death reads as EOF here
        self.process, self.conn, self.state = process, parent_end, "starting"

    def await_ready(self, timeout: float, closing: Callable[[], bool]) -> None:
        """Wait for the worker's "ready" (its engine's info) for up to `timeout` s, or until `closing()`. Anything
        else stops the process and raises WorkerStartError with the reason."""
        deadline = time.monotonic() + timeout
        ready: list = []
        while not ready and time.monotonic() < deadline and not closing():  # a shutdown stops the wait
            ready = wait_any([self.conn, self.process.sentinel], min(0.25, max(0.0, deadline - time.monotonic())))
        message = None
        if self.conn.poll():
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                pass
        if message and message[0] == "ready":
            self.info, self.state, self.error = message[1], "idle", None
            return
        if message and message[0] == "error":
            why = message[1]
        elif closing():
            why = "shutting down"
        elif not ready:
            why = f"no answer within {timeout:g} s"
        else:
            self.process.join(5.0)
            why = f"exited with code {self.process.exitcode} while loading"
        self.stop(grace=0.0)
        self.error = why
        raise WorkerStartError(f"worker {self.index} ({self.spec.device}): {why}")

    def kill(self) -> None:
        """SIGKILL the process now (its slot thread sees it die and reaps it)."""
        try:
            if self.process is not None:
                self.process.kill()
        except (OSError, ValueError):  # already reaped by its slot thread
            pass

    def stop(self, grace: float = 5.0) -> None:
        """Ask the process to exit, wait up to `grace` s, then kill it; release its pipe."""
        process, conn = self.process, self.conn
        if process is None:
            return
        if process.is_alive() and grace > 0:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
            process.join(grace)
        if process.is_alive():
            process.kill()
            process.join(5.0)
        conn.close()
        try:
            process.close()
        except ValueError:  # still running after SIGKILL + 5 s (stuck in the kernel): leave it to the OS
            log.error("worker %d (pid %s) did not exit after SIGKILL", self.index, process.pid)
        self.process = self.conn = None
