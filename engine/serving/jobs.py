"""Bounded render-job queue with one worker thread that owns the models.

Renders are long and the models are not re-entrant, so every render runs on a single worker thread; callers
(the OSC server, a CLI, a test) only ever enqueue, cancel and read state, and never block on a render.

Life of a job::

    queued --> running --> done
       |          |------> failed      (run_job raised; the worker carries on with the next job)
       |          '------> cancelled   (the job's progress callback raised `Cancelled`)
       '-----------------> cancelled   (cancelled before it started)

Cancellation is cooperative: `cancel()` sets a flag and the next call of the job's progress callback raises
`Cancelled`. The engine calls the callback after every sampler step and phase iteration, so a cancel takes effect
within one step. `run_job` must write its output only after the render (the engine's writers use a temp name and
an atomic rename), so a cancelled or failed job leaves no partial file behind.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a running job (by its progress callback) once the job has been cancelled."""


class QueueFull(RuntimeError):
    """`JobQueue.submit` refused a job because `max_pending` jobs are already waiting."""


class QueueClosed(RuntimeError):
    """`JobQueue.submit` after `shutdown()`."""


class DuplicateJob(ValueError):
    """A job with the same id is already queued or running."""


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


ProgressCallback = Callable[[float], None]


@dataclass
class Job:
    """One unit of work. `request` is opaque to the queue; `run_job(job, progress)` interprets it.

    Callbacks run on the worker thread (progress, done, fail) and must be quick; exceptions they raise are logged
    and otherwise ignored (except `Cancelled` from the progress path, which is the queue's own signal).
    `on_fail(job, reason)` is also called for cancelled jobs, with reason "cancelled" (or the shutdown reason).
    """

    id: str
    request: Any = None
    on_progress: Callable[["Job", float], None] | None = None
    on_done: Callable[["Job", Any], None] | None = None
    on_fail: Callable[["Job", str], None] | None = None
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    result: Any = None
    reason: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancel_reason: str = field(default="cancelled", repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the job was cancelled; `run_job` may call this between its own phases."""
        if self._cancel.is_set():
            raise Cancelled(self._cancel_reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done, failed or cancelled. Returns False on timeout."""
        return self._finished.wait(timeout)


def check_admission(job: Job, closed: bool, known: bool, waiting: int, max_pending: int) -> None:
    """The admission rules every queue applies (in-process or worker pool), under the caller's lock."""
    if closed:
        raise QueueClosed("the job queue is shut down")
    if known:
        raise DuplicateJob(f"a job with id {job.id!r} is already queued or running")
    if waiting >= max_pending:
        raise QueueFull(f"queue full ({max_pending} jobs waiting)")


def enqueue(job: Job, pending, counts: dict, wake: threading.Condition) -> None:
    """Append an admitted job and wake the dispatcher (caller holds the lock)."""
    job.state = JobState.QUEUED
    pending.append(job)
    counts["submitted"] += 1
    wake.notify()


class JobQueue:
    """FIFO of at most `max_pending` waiting jobs plus the one running, served by one worker thread.

    Args:
        run_job: `run_job(job, progress) -> result`, called on the worker thread only. `progress(fraction)` records
            and reports progress and raises `Cancelled` once the job is cancelled; pass it to the engine as its
            per-step callback.
        max_pending: most jobs that may wait behind the running one; `submit` raises `QueueFull` beyond it.
        name: worker thread name (for logs and debuggers).
        max_batch, batch_key, run_batch: batching. When a job starts and `batch_key(job)` is not None, up to
            `max_batch - 1` waiting jobs with the same key start with it (they jump the queue: they would reuse
            the same computation). `run_batch(jobs, progress) -> [result or Exception per job]` runs them;
            `progress(fraction)` reports to every job of the batch, finishes a job cancelled meanwhile (its later
            result is dropped) and raises `Cancelled` once none is left. `batch_key` runs under the queue's lock:
            keep it a pure function of the request.
    """

    def __init__(self, run_job: Callable[[Job, ProgressCallback], Any], max_pending: int = 8,
                 name: str = "msanii-jobs", max_batch: int = 1, batch_key: Callable[[Job], Any] | None = None,
                 run_batch: Callable[[list[Job], ProgressCallback], list[Any]] | None = None) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_batch > 1 and (batch_key is None or run_batch is None):
            raise ValueError("max_batch > 1 needs batch_key and run_batch")
        self._run_job = run_job
        self.max_pending = max_pending
        self.max_batch = max_batch
        self._batch_key = batch_key
        self._run_batch = run_batch
        self._pending: collections.deque[Job] = collections.deque()
        self._running: list[Job] = []  # the job (or batch of jobs) being rendered
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.counts = {"submitted": 0, "done": 0, "failed": 0, "cancelled": 0}
        self._worker = threading.Thread(target=self._work, name=name, daemon=True)
        self._worker.start()

    # ---- caller side (any thread) ----
    def submit(self, job: Job) -> int:
        """Enqueue `job`; returns its position: the number of jobs ahead of it (0 = starts now)."""
        with self._lock:
            check_admission(job, self._closed, self._find(job.id) is not None, len(self._pending), self.max_pending)
            position = len(self._pending) + (1 if self._running else 0)
            enqueue(job, self._pending, self.counts, self._wake)
            return position

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        """Cancel a queued or running job. Returns False if no such job is queued or running.

        A queued job is removed at once (its `on_fail` runs on the calling thread); a running job stops at its next
        progress callback and reports from the worker thread.
        """
        with self._lock:
            job = self._find(job_id)
            if job is None:
                return False
            job._cancel_reason = reason
            job._cancel.set()
            if job.state is JobState.QUEUED:
                self._pending.remove(job)
            else:
                return True
        self._finish(job, JobState.CANCELLED, reason=reason)
        return True

    def get(self, job_id: str) -> Job | None:
        """The queued or running job with this id, if any."""
        with self._lock:
            return self._find(job_id)

    def status(self) -> dict:
        """Snapshot: state ("idle"|"busy"|"closed"), running job id, progress, pending ids, counters, and the
        render slots (`workers` 1, `busy`, `restarts` 0: the same keys as `engine.serving.WorkerPool.status`)."""
        with self._lock:
            running = self._running[0] if self._running else None
            return {
                "state": "closed" if self._closed else ("busy" if running is not None else "idle"),
                "running": running.id if running is not None else None,
                "progress": running.progress if running is not None else None,
                "batch": [j.id for j in self._running],
                "pending": [j.id for j in self._pending],
                "queue_length": len(self._pending) + len(self._running),
                "workers": 1, "busy": 1 if running is not None else 0, "restarts": 0,
                **self.counts,
            }

    def shutdown(self, cancel_running: bool = True, timeout: float | None = 30.0,
                 reason: str = "server shutting down") -> bool:
        """Refuse new jobs, cancel waiting ones, cancel (or let finish) the running one, join the worker.

        Returns True if the worker stopped within `timeout`.
        """
        with self._lock:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            for job in dropped + (self._running if cancel_running else []):
                job._cancel_reason = reason
                job._cancel.set()
            self._wake.notify_all()
        for job in dropped:
            self._finish(job, JobState.CANCELLED, reason=reason)
        self._worker.join(timeout)
        return not self._worker.is_alive()

    # ---- worker side ----
    def _find(self, job_id: str) -> Job | None:
        for job in self._running:
            if job.id == job_id:
                return job
        for job in self._pending:
            if job.id == job_id:
                return job
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:  # closed and drained
                    return
                group = self._take_batch()
                self._running = list(group)
                for job in group:
                    job.state = JobState.RUNNING
                    job.started_at = time.monotonic()
            if len(group) == 1:
                outcomes = [(group[0], *self._run_one(group[0]))]
            else:
                outcomes = self._run_group(group)
            with self._lock:  # free the slot before reporting, so a client reacting to "done" sees an idle queue
                self._running = []
            for job, state, reason in outcomes:
                self._finish(job, state, reason)

    def _take_batch(self) -> list[Job]:
        """The next job and the waiting jobs that share its batch key (caller holds the lock)."""
        group = [self._pending.popleft()]
        key = self._batch_key(group[0]) if self.max_batch > 1 else None
        if key is not None:
            for job in list(self._pending):
                if len(group) == self.max_batch:
                    break
                if self._batch_key(job) == key:
                    self._pending.remove(job)
                    group.append(job)
        return group

    @staticmethod
    def _report(job: Job, fraction: float) -> None:
        """Record and report one job's progress; raises `Cancelled` once it is cancelled."""
        if job._cancel.is_set():
            raise Cancelled(job._cancel_reason)
        record_progress(job, fraction)

    def _run_group(self, group: list[Job]) -> list[tuple[Job, JobState, str | None]]:
        """Run a batch; jobs cancelled while it runs are finished at once, the rest when it returns."""
        live = list(group)

        def progress(fraction: float) -> None:
            for job in list(live):
                try:
                    self._report(job, fraction)
                except Cancelled as exc:
                    live.remove(job)
                    with self._lock:  # its id is free again at once, as for a single job
                        self._running.remove(job)
                    self._finish(job, JobState.CANCELLED, str(exc) or "cancelled")
            if not live:
                raise Cancelled("every job of the batch was cancelled")

        try:
            progress(0.0)
            results = self._run_batch(list(group), progress)
            if len(results) != len(group):  # every job must end: a short list would leave some waiting forever
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(group)} jobs")
        except Cancelled:
            return [(job, JobState.CANCELLED, job._cancel_reason) for job in live]
        except Exception as exc:  # the whole batch failed: each of its jobs reports why
            log.debug("batch %s failed:\n%s", [j.id for j in group], traceback.format_exc())
            return [(job, JobState.FAILED, describe_error(exc)) for job in live]
        outcomes = []
        for job, result in zip(group, results):
            if job not in live:
                continue
            if isinstance(result, Cancelled):
                outcomes.append((job, JobState.CANCELLED, str(result) or "cancelled"))
            elif isinstance(result, Exception):
                outcomes.append((job, JobState.FAILED, describe_error(result)))
            else:
                job.result = result
                outcomes.append((job, JobState.DONE, None))
        return outcomes

    def _run_one(self, job: Job) -> tuple[JobState, str | None]:
        def progress(fraction: float) -> None:
            self._report(job, fraction)

        try:
            job.check_cancelled()
            job.result = self._run_job(job, progress)
        except Cancelled as exc:
            return JobState.CANCELLED, str(exc) or "cancelled"
        except Exception as exc:  # report and keep serving: one bad job must not stop the queue
            log.debug("job %s failed:\n%s", job.id, traceback.format_exc())
            return JobState.FAILED, describe_error(exc)
        return JobState.DONE, None

    def _finish(self, job: Job, state: JobState, reason: str | None = None) -> None:
        with self._lock:
            self.counts[COUNT_KEYS[state]] += 1
        report_finished(job, state, reason)


COUNT_KEYS = {JobState.DONE: "done", JobState.FAILED: "failed", JobState.CANCELLED: "cancelled"}


def record_progress(job: Job, fraction: float) -> None:
    """Store a job's progress (clamped to [0, 1]) and call its `on_progress`; a broken reporter is logged, never
    raised. Shared by `JobQueue` and `engine.serving.workers.WorkerPool`."""
    job.progress = min(max(float(fraction), 0.0), 1.0)
    if job.on_progress is not None:
        try:
            job.on_progress(job, job.progress)
        except Exception:  # a broken reporter must not stop the render
            log.exception("progress callback of job %s failed", job.id)


def report_finished(job: Job, state: JobState, reason: str | None = None) -> None:
    """Record a job's final state and call its `on_done` / `on_fail` (errors there are logged, never raised);
    wakes `job.wait()`. Shared by `JobQueue` and `engine.serving.workers.WorkerPool` so both report alike."""
    job.state = state
    job.reason = reason
    job.finished_at = time.monotonic()
    try:
        if state is JobState.DONE:
            if job.on_done is not None:
                job.on_done(job, job.result)
        elif job.on_fail is not None:
            job.on_fail(job, reason or COUNT_KEYS[state])
    except Exception:
        log.exception("completion callback of job %s failed", job.id)
    finally:
        job._finished.set()


def describe_error(exc: BaseException) -> str:
    """One-line reason for a failed job. The project's errors (ValueError subclasses: bad region, bad bundle,
    unreadable file...) already say what is wrong in words; anything else keeps its type as a hint."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    if not message:
        return kind
    if isinstance(exc, ValueError) or kind in ("Exception", "RuntimeError"):
        return message
    return f"{kind}: {message}"
