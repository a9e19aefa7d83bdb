"""Supervised engine worker processes: N processes, each holding its own `Engine`, fed from one bounded queue.

The in-process `engine.serving.jobs.JobQueue` renders on a thread of the caller's process, so a native crash or a GPU
out-of-memory abort takes the whole server down. `WorkerPool` has the same interface (submit, cancel, get, status,
shutdown) but renders in child processes (multiprocessing "spawn": no forked CUDA or onnxruntime state):

    supervisor process                                   worker process (one per slot)
    ------------------                                   -----------------------------
    submit(job) -> pending deque                         Engine.load(bundle, device, threads)
    slot thread i: next pending job  --("job", seq, request)-->  render(engine, request, progress)
                   <--("progress", seq, f)--  after every sampler step / phase iteration
                   <--("done", seq, result) | ("failed", seq, reason) | ("cancelled", seq)--
                   finish(job, result) here, then on_done / on_fail

- Jobs go to the next free worker (FIFO); at most `max_pending` wait.
- Cancel: the slot's shared `cancel_seq` is set to the running job's sequence number; the worker's progress
  callback compares it at every step and raises `Cancelled`, so a cancel takes effect within one step. A worker
  that does not stop within `cancel_grace` seconds (stuck in one native call) is killed and restarted.
- Crash: the slot thread waits on the worker's pipe and its process sentinel together, so a worker that dies
  (SIGKILL, kernel OOM killer, segfault, CUDA abort) is seen at once: its job fails with "worker crashed", the
  worker is restarted (counted in `status()["restarts"]`) and queued jobs carry on (on the other workers at once,
  on this one once it is back). A job is never retried: a render that crashes its worker would crash the next.
  A failure whose message looks like a GPU error (out of memory, CUDA, cuDNN...) also recycles the worker,
  since such errors can leave the device context unusable.
- Workers never write output files: `render` returns the result to the supervisor, where `finish(job, result)`
  writes it. A worker that dies therefore cannot leave a partial file, and one process chooses every output
  name, so two workers cannot race for the same one.
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing as mp
import re
import threading
import time
import traceback
from multiprocessing.connection import wait as wait_any
from typing import Any, Callable, Sequence

from engine.serving.jobs import (COUNT_KEYS, Cancelled, Job, JobState,
                         check_admission, describe_error, enqueue, record_progress, report_finished)
from engine.serving.worker_process import Render, WorkerSpec, plan_workers
from engine.serving.worker_slot import WorkerSlot, WorkerStartError

__all__ = ["CRASHED", "NoWorkers", "WorkerPool", "WorkerSpec", "WorkerStartError", "plan_workers"]

log = logging.getLogger(__name__)

CRASHED = "worker crashed"
# Errors after which a GPU context may be unusable: report the job's failure, then start a fresh worker.
RECYCLE_ERRORS = re.compile(r"out of memory|CUDA|cuDNN|CUBLAS|TensorRT", re.IGNORECASE)
RESTART_DELAYS = (0.5, 2.0, 8.0)  # back-off between attempts to restart a worker that fails to start


class NoWorkers(RuntimeError):
    """`submit` when every worker has died and could not be restarted."""


class WorkerPool:
    """Render jobs in supervised worker processes. Same caller interface as `engine.serving.jobs.JobQueue`.

    Args:
        render: `render(engine, job.request, progress) -> result`, run in a worker process. Must be a module-level
            function (it is pickled by reference); `job.request` and the result must pickle.
        specs: one `WorkerSpec` per worker process (see `plan_workers`).
        finish: `finish(job, result) -> result`, run in this process before `on_done` (e.g. write the file);
            an exception there fails the job.
        describe: `describe(engine) -> dict`, run in each worker after loading; merged into `info`.
        max_pending: most jobs that may wait for a free worker; `submit` raises `QueueFull` beyond it.
        start_timeout: seconds a worker may take to load its engine.
        cancel_grace: seconds a cancelled job may take to stop before its worker is killed.

    Raises `WorkerStartError` if a worker cannot start (nothing is left running).
    """

    def __init__(self, render: Render, specs: Sequence[WorkerSpec], finish: Callable[[Job, Any], Any] | None = None,
                 describe: Callable[[Any], dict] | None = None, max_pending: int = 8, start_timeout: float = 300.0,
                 cancel_grace: float = 10.0, name: str = "msanii-worker") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if not specs:
            raise ValueError("a worker pool needs at least one worker")
        self._render, self._finish_result, self._describe = render, finish, describe
        self.max_pending, self.start_timeout, self.cancel_grace, self.name = (max_pending, start_timeout,
                                                                              cancel_grace, name)
        self._ctx = mp.get_context("spawn")
        self._pending: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._seq = itertools.count()
        self.counts = {"submitted": 0, "done": 0, "failed": 0, "cancelled": 0}
        self.crashes: list[dict] = []  # {"worker", "pid", "exitcode", "job", "at"}, newest last (bounded)
        self._slots = [WorkerSlot(i, spec, self._ctx.Value("q", -1, lock=False)) for i, spec in enumerate(specs)]
        try:
            for slot in self._slots:  # load all engines at once, then wait for each
                slot.launch(self._ctx, self._render, self._describe, self.name)
            for slot in self._slots:
                slot.await_ready(self.start_timeout, lambda: self._closed)
        except BaseException:
            for slot in self._slots:
                slot.stop(grace=1.0)
            raise
        self.info = dict(self._slots[0].info)
        for slot in self._slots:
            slot.thread = threading.Thread(target=self._serve, args=(slot,), name=f"{name}-{slot.index}",
                                           daemon=True)
            slot.thread.start()

    # ---- caller side (any thread) ----
    @property
    def devices(self) -> list[str]:
        return [slot.spec.device for slot in self._slots]

    def submit(self, job: Job) -> int:
        """Enqueue `job`; returns its position: how many jobs must finish before it starts (0 = starts now)."""
        with self._lock:
            check_admission(job, self._closed, self._find(job.id) is not None, len(self._pending), self.max_pending)
            serving = sum(slot.state != "dead" for slot in self._slots)
            if serving == 0:
                raise NoWorkers(f"no engine worker available: {self._slots[-1].error}")
            busy = sum(slot.job is not None for slot in self._slots)
            position = max(0, len(self._pending) + busy - (serving - 1))
            enqueue(job, self._pending, self.counts, self._wake)
            return position

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        """Cancel a queued or running job (False if there is none). A queued job reports at once on this thread;
        a running one stops at its next sampler step and reports from its slot thread."""
        with self._lock:
            job = self._find(job_id)
            if job is None:
                return False
            self._request_cancel(job, reason)
            if job.state is not JobState.QUEUED:
                return True
            self._pending.remove(job)
        self._finish(job, JobState.CANCELLED, reason)
        return True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._find(job_id)

    def status(self) -> dict:
        """Snapshot with `engine.serving.jobs.JobQueue.status`'s keys (`running`: the oldest running job) plus
        `running_ids`, per-worker `worker_states` and `crashes` (the last few)."""
        with self._lock:
            running = sorted((s.job for s in self._slots if s.job is not None), key=lambda j: j.started_at or 0)
            first = running[0] if running else None
            return {
                "state": "closed" if self._closed else ("busy" if running else "idle"),
                "running": first.id if first else None,
                "progress": first.progress if first else None,
                "running_ids": [j.id for j in running],
                "pending": [j.id for j in self._pending],
                "queue_length": len(self._pending) + len(running),
                "workers": len(self._slots), "busy": len(running),
                "restarts": sum(s.restarts for s in self._slots),
                "worker_states": [{"device": s.spec.device, "state": s.state, "pid": s.info.get("pid"),
                                   "job": s.job.id if s.job is not None else None, "restarts": s.restarts,
                                   "error": s.error} for s in self._slots],
                "crashes": list(self.crashes[-8:]),
                **self.counts,
            }

    def shutdown(self, cancel_running: bool = True, timeout: float | None = 30.0,
                 reason: str = "server shutting down") -> bool:
        """Refuse new jobs, cancel waiting ones, cancel (or let finish) running ones, stop the workers.
        Returns True if every slot stopped within `timeout` (stragglers are killed either way)."""
        with self._lock:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            for job in dropped:
                self._request_cancel(job, reason)
            if cancel_running:
                for slot in self._slots:
                    if slot.job is not None:
                        self._request_cancel(slot.job, reason)
            self._wake.notify_all()
        for job in dropped:
            self._finish(job, JobState.CANCELLED, reason)
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for slot in self._slots:
            if slot.thread is not None:
                slot.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                stopped &= not slot.thread.is_alive()
        for slot in self._slots:  # a slot thread still waiting on a stuck render: its worker goes now (the
            if slot.thread is not None and slot.thread.is_alive():  # thread sees it die and cleans up)
                slot.kill()
        return stopped

    # ---- bookkeeping (callers hold self._lock) ----
    def _find(self, job_id: str) -> Job | None:
        for slot in self._slots:
            if slot.job is not None and slot.job.id == job_id:
                return slot.job
        for job in self._pending:
            if job.id == job_id:
                return job
        return None

    def _request_cancel(self, job: Job, reason: str) -> None:
        job._cancel_reason = reason
        job._cancel.set()
        for slot in self._slots:
            if slot.job is job:
                slot.cancel_seq.value = slot.seq  # the worker's next progress call raises Cancelled

    def _finish(self, job: Job, state: JobState, reason: str | None = None) -> None:
        with self._lock:
            self.counts[COUNT_KEYS[state]] += 1
        report_finished(job, state, reason)

    # ---- worker processes ----
    def _restart(self, slot: WorkerSlot) -> bool:
        """Replace a dead or recycled worker. Returns False (slot dead) if it cannot be brought back."""
        slot.stop(grace=0.0)
        for delay in (0.0, *RESTART_DELAYS):
            if self._closed:
                return False
            time.sleep(delay)
            try:
                slot.launch(self._ctx, self._render, self._describe, self.name)
                slot.await_ready(self.start_timeout, lambda: self._closed)
                log.warning("worker %d restarted (pid %s)", slot.index, slot.info.get("pid"))
                return True
            except WorkerStartError as exc:
                if not self._closed:
                    log.error("restarting worker %d failed: %s", slot.index, exc)
        with self._lock:
            slot.state = "dead"
            orphans = []
            if all(s.state == "dead" for s in self._slots):  # nobody left to run what is waiting
                orphans, self._pending = list(self._pending), collections.deque()
        for job in orphans:
            self._finish(job, JobState.FAILED, f"no engine worker available: {slot.error}")
        return False

    # ---- slot threads ----
    def _next_job(self, slot: WorkerSlot) -> Job | None:
        with self._lock:
            slot.state = "idle"
            while not self._pending and not self._closed:
                self._wake.wait()
            if not self._pending:
                return None
            job = self._pending.popleft()
            slot.job, slot.seq, slot.state = job, next(self._seq), "busy"
            job.state = JobState.RUNNING
            job.started_at = time.monotonic()
            if job.cancel_requested:
                slot.cancel_seq.value = slot.seq
            return job

    def _serve(self, slot: WorkerSlot) -> None:
        while True:
            job = self._next_job(slot)
            if job is None:
                break
            state, reason, healthy = self._run(slot, job)
            with self._lock:  # free the slot before reporting, so a client reacting to "done" sees it free
                slot.job = None
                if not healthy and not self._closed:
                    slot.state, slot.restarts = "restarting", slot.restarts + 1
            self._finish(job, state, reason)
            if not healthy and (self._closed or not self._restart(slot)):
                break
        slot.stop()
        if slot.state != "dead":
            slot.state = "stopped"

    def _run(self, slot: WorkerSlot, job: Job) -> tuple[JobState, str | None, bool]:
        """Run one job on the slot's worker. Returns (final state, reason, whether the worker is still usable)."""
        seq = slot.seq
        try:
            slot.conn.send(("job", seq, job.request))
        except (OSError, ValueError):
            return self._crashed(slot, job)
        except Exception as exc:  # the request does not pickle: this job's fault, not the worker's
            return JobState.FAILED, f"request could not be sent to a worker: {describe_error(exc)}", True
        cancel_deadline = None
        while True:
            if job.cancel_requested and cancel_deadline is None:
                cancel_deadline = time.monotonic() + self.cancel_grace
            timeout = 0.5 if cancel_deadline is None else max(0.0, min(0.5, cancel_deadline - time.monotonic()))
            ready = wait_any([slot.conn, slot.process.sentinel], timeout)
            if slot.conn.poll():  # read what the worker said before looking at whether it died
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):
                    return self._crashed(slot, job)
                if message[1] != seq:
                    continue
                kind = message[0]
                if kind == "progress":
                    record_progress(job, message[2])
                elif kind == "cancelled":
                    return JobState.CANCELLED, job._cancel_reason, True
                elif kind == "failed":
                    return JobState.FAILED, message[2], not RECYCLE_ERRORS.search(message[2])
                elif kind == "done":
                    return self._done(job, message[2])
            elif ready:  # the sentinel fired and nothing is left to read: the worker died mid-job
                return self._crashed(slot, job)
            elif cancel_deadline is not None and time.monotonic() >= cancel_deadline:
                log.warning("worker %d did not stop job %s within %g s of its cancel; killing it", slot.index,
                            job.id, self.cancel_grace)
                slot.process.kill()
                slot.process.join(5.0)
                return JobState.CANCELLED, job._cancel_reason, False

    def _done(self, job: Job, result: Any) -> tuple[JobState, str | None, bool]:
        try:
            job.check_cancelled()
            job.result = self._finish_result(job, result) if self._finish_result is not None else result
        except Cancelled as exc:
            return JobState.CANCELLED, str(exc) or "cancelled", True
        except Exception as exc:
            log.debug("finishing job %s failed:\n%s", job.id, traceback.format_exc())
            return JobState.FAILED, describe_error(exc), True
        return JobState.DONE, None, True

    def _crashed(self, slot: WorkerSlot, job: Job) -> tuple[JobState, str | None, bool]:
        process = slot.process
        process.join(5.0)
        exitcode = process.exitcode
        with self._lock:
            self.crashes.append({"worker": slot.index, "pid": slot.info.get("pid"), "exitcode": exitcode,
                                 "job": job.id, "at": time.time()})
            del self.crashes[:-64]
        how = f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
        log.warning("worker %d (pid %s, %s) died during job %s (%s)", slot.index, slot.info.get("pid"),
                    slot.spec.device, job.id, how)
        if job.cancel_requested:  # the job was being cancelled anyway (or the server is shutting down)
            return JobState.CANCELLED, job._cancel_reason, False
        return JobState.FAILED, CRASHED, False
