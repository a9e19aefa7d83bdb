"""engine.serving.jobs: ordering, bounds, progress, cancellation within one step, failures, shutdown."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine.serving.jobs import Cancelled, DuplicateJob, Job, JobQueue, JobState, QueueClosed, QueueFull


class StepRender:
    """A render-shaped workload: `steps` steps of `step_s` seconds, progress after each, output written at the end
    through a temp name + rename, exactly as the engine's writer does."""

    def __init__(self, out_dir: Path, steps: int = 20, step_s: float = 0.01) -> None:
        self.out_dir = out_dir
        self.steps = steps
        self.step_s = step_s
        self.threads: set[int] = set()
        self.started: dict[str, threading.Event] = {}
        self.steps_done: dict[str, int] = {}

    def __call__(self, job: Job, progress) -> Path:
        self.threads.add(threading.get_ident())
        self.started.setdefault(job.id, threading.Event()).set()
        req = job.request or {}
        if req.get("fail"):
            raise ValueError(req["fail"])
        steps = req.get("steps", self.steps)
        for i in range(steps):
            time.sleep(req.get("step_s", self.step_s))
            self.steps_done[job.id] = i + 1
            progress((i + 1) / steps)
        final = self.out_dir / f"{job.id}.txt"
        tmp = self.out_dir / f".{job.id}.tmp"
        tmp.write_text(f"{job.id} {steps}\n")
        os.replace(tmp, final)
        return final


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def job(self, job_id: str, request=None) -> Job:
        def on_progress(job, fraction):
            with self.lock:
                self.events.append(("progress", job.id, fraction))

        def on_done(job, result):
            with self.lock:
                self.events.append(("done", job.id, result))

        def on_fail(job, reason):
            with self.lock:
                self.events.append(("fail", job.id, reason))

        return Job(job_id, request, on_progress=on_progress, on_done=on_done, on_fail=on_fail)

    def of(self, kind: str) -> list[tuple]:
        with self.lock:
            return [e for e in self.events if e[0] == kind]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def test_fifo_positions_progress_and_worker_thread(tmp_path):
    render = StepRender(tmp_path, steps=5)
    queue = JobQueue(render, max_pending=4)
    rec = Recorder()
    jobs = [rec.job(f"j{i}") for i in range(3)]
    positions = [queue.submit(j) for j in jobs]
    # The first job may already have been picked up; either way each job sees the ones ahead of it.
    assert positions[1] == positions[0] + 1 and positions[2] == positions[1] + 1
    assert positions[0] == 0
    for j in jobs:
        assert j.wait(10)
    assert [e[1] for e in rec.of("done")] == ["j0", "j1", "j2"]
    for j in jobs:
        assert j.state is JobState.DONE
        assert j.result.read_text() == f"{j.id} 5\n"
        fractions = [e[2] for e in rec.of("progress") if e[1] == j.id]
        assert fractions == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert len(render.threads) == 1 and threading.get_ident() not in render.threads
    assert queue.status()["done"] == 3
    assert queue.shutdown()


def test_queue_full_and_duplicate_id(tmp_path):
    render = StepRender(tmp_path, steps=200, step_s=0.01)
    queue = JobQueue(render, max_pending=2)
    rec = Recorder()
    queue.submit(rec.job("running"))
    render.started.setdefault("running", threading.Event()).wait(5)
    assert queue.submit(rec.job("a")) == 1
    assert queue.submit(rec.job("b")) == 2
    with pytest.raises(QueueFull):
        queue.submit(rec.job("c"))
    with pytest.raises(DuplicateJob):
        queue.submit(rec.job("a"))
    status = queue.status()
    assert status["state"] == "busy" and status["running"] == "running"
    assert status["pending"] == ["a", "b"] and status["queue_length"] == 3
    assert queue.shutdown(timeout=5)


def test_cancel_running_within_one_step_leaves_no_file(tmp_path):
    render = StepRender(tmp_path, steps=1000, step_s=0.01)
    queue = JobQueue(render)
    rec = Recorder()
    job = rec.job("long")
    queue.submit(job)
    wait_for(lambda: render.steps_done.get("long", 0) >= 3)
    at_cancel = render.steps_done["long"]
    assert queue.cancel("long")
    assert job.wait(5)
    assert job.state is JobState.CANCELLED
    assert rec.of("fail") == [("fail", "long", "cancelled")]
    # One step may be in flight when cancel lands; the next progress call stops it.
    assert render.steps_done["long"] - at_cancel <= 1
    assert list(tmp_path.iterdir()) == []
    assert not queue.cancel("long")  # finished jobs are no longer cancellable
    # The worker is free for the next job.
    nxt = rec.job("next", {"steps": 2})
    queue.submit(nxt)
    assert nxt.wait(5) and nxt.state is JobState.DONE
    assert queue.shutdown()


def test_cancel_queued_job_never_runs(tmp_path):
    render = StepRender(tmp_path, steps=30, step_s=0.01)
    queue = JobQueue(render)
    rec = Recorder()
    first, second = rec.job("first"), rec.job("second")
    queue.submit(first)
    queue.submit(second)
    assert queue.cancel("second")
    assert second.state is JobState.CANCELLED and second.wait(0)
    assert first.wait(10) and first.state is JobState.DONE
    assert "second" not in render.started
    assert queue.shutdown()


def test_failed_job_reports_reason_and_worker_continues(tmp_path):
    render = StepRender(tmp_path, steps=2)
    queue = JobQueue(render)
    rec = Recorder()
    bad, good = rec.job("bad", {"fail": "input file is silent"}), rec.job("good")
    queue.submit(bad)
    queue.submit(good)
    assert good.wait(10)
    assert bad.state is JobState.FAILED and bad.reason == "input file is silent"
    assert rec.of("fail") == [("fail", "bad", "input file is silent")]
    assert good.state is JobState.DONE
    assert queue.status()["failed"] == 1
    assert queue.shutdown()


def test_broken_callbacks_do_not_stop_the_worker(tmp_path):
    render = StepRender(tmp_path, steps=3)
    queue = JobQueue(render)

    def explode(*_):
        raise RuntimeError("reporter broke")

    job = Job("x", on_progress=explode, on_done=explode)
    queue.submit(job)
    assert job.wait(10) and job.state is JobState.DONE
    after = Job("y")
    queue.submit(after)
    assert after.wait(10) and after.state is JobState.DONE
    assert queue.shutdown()


def test_cancelled_raised_by_run_job_itself(tmp_path):
    def run_job(job, progress):
        job.check_cancelled()
        raise Cancelled("stopped by user")

    queue = JobQueue(run_job)
    job = Job("c")
    queue.submit(job)
    assert job.wait(5) and job.state is JobState.CANCELLED and job.reason == "stopped by user"
    assert queue.shutdown()


def test_shutdown_cancels_running_and_pending(tmp_path):
    render = StepRender(tmp_path, steps=10_000, step_s=0.01)
    queue = JobQueue(render)
    rec = Recorder()
    running, waiting = rec.job("running"), rec.job("waiting")
    queue.submit(running)
    queue.submit(waiting)
    render.started.setdefault("running", threading.Event()).wait(5)
    t0 = time.monotonic()
    assert queue.shutdown(timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert running.state is JobState.CANCELLED and waiting.state is JobState.CANCELLED
    assert running.reason == "server shutting down"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(QueueClosed):
        queue.submit(rec.job("late"))
    assert queue.status()["state"] == "closed"


def test_max_pending_validated():
    with pytest.raises(ValueError, match="max_pending"):
        JobQueue(lambda job, progress: None, max_pending=0)


def test_slot_is_free_when_done_is_reported(tmp_path):
    """A client that submits again on "done" must be told position 0, not wait behind a finished job."""
    render = StepRender(tmp_path, steps=2)
    queue = JobQueue(render)
    seen = []
    job = Job("first", on_done=lambda j, r: seen.append((queue.status()["state"], queue.submit(Job("second")))))
    queue.submit(job)
    assert job.wait(10)
    assert seen == [("idle", 0)]
    assert queue.shutdown()


def test_failure_reasons_are_one_line():
    from engine.serving.jobs import describe_error

    class RegionError(ValueError):
        pass

    assert describe_error(RegionError("region 1 ends after the end of the file\nmore")) == \
        "region 1 ends after the end of the file"
    assert describe_error(MemoryError("out of memory")) == "MemoryError: out of memory"
    assert describe_error(KeyError()) == "KeyError"


class BatchRender:
    """Runs several jobs as one computation (as generate_batch does): steps shared by the batch, then one output
    per job; records which jobs ran together."""

    def __init__(self, steps: int = 10, step_s: float = 0.01) -> None:
        self.steps, self.step_s = steps, step_s
        self.batches: list[list[str]] = []
        self.gate = threading.Event()

    def single(self, job: Job, progress) -> str:
        if job.request.get("hold"):
            self.gate.wait(10)
        return self([job], progress)[0]

    def __call__(self, jobs: list[Job], progress) -> list:
        self.batches.append([j.id for j in jobs])
        for i in range(self.steps):
            time.sleep(self.step_s)
            progress((i + 1) / self.steps)
        return [ValueError("bad seed") if j.request.get("fail") else f"out-{j.id}" for j in jobs]


def _batch_queue(render: BatchRender, max_batch: int = 3) -> JobQueue:
    return JobQueue(render.single, max_pending=8, max_batch=max_batch, run_batch=render,
                    batch_key=lambda job: job.request.get("key"))


def test_jobs_with_one_key_run_as_one_batch_and_each_gets_its_result():
    render = BatchRender()
    queue = _batch_queue(render)
    holder = Job("hold", {"hold": True})
    queue.submit(holder)
    jobs = [Job(name, {"key": key}) for name, key in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a"),
                                                        ("a4", "a"), ("x", None))]
    for job in jobs:
        queue.submit(job)
    assert queue.status()["queue_length"] == 7
    render.gate.set()
    for job in jobs:
        assert job.wait(10)
    # a1 starts with the next two "a" jobs (max_batch 3); b1 then runs alone (no partner), a4 alone, x unbatched.
    assert render.batches == [["hold"], ["a1", "a2", "a3"], ["b1"], ["a4"], ["x"]]
    assert [j.state for j in jobs] == [JobState.DONE] * 6
    assert [j.result for j in jobs[:4]] == ["out-a1", "out-b1", "out-a2", "out-a3"]
    assert queue.counts["done"] == 7 and queue.status()["batch"] == []
    queue.shutdown()


def test_a_job_cancelled_inside_a_batch_stops_alone():
    render = BatchRender(steps=40, step_s=0.01)
    queue = _batch_queue(render)
    queue.submit(Job("hold", {"hold": True}))
    seen: dict[str, list[float]] = {}
    jobs = [Job(f"j{i}", {"key": "k", "fail": i == 2},
                on_progress=lambda job, f: seen.setdefault(job.id, []).append(f)) for i in range(3)]
    for job in jobs:
        queue.submit(job)
    render.gate.set()
    while len(seen.get("j0", [])) < 5:
        time.sleep(0.005)
    assert queue.status()["batch"] == ["j0", "j1", "j2"]
    queue.cancel("j1", "changed my mind")
    assert jobs[1].wait(1)  # finished within a step, while the batch goes on
    assert jobs[1].state is JobState.CANCELLED and jobs[1].reason == "changed my mind"
    assert not jobs[0]._finished.is_set() and queue.status()["batch"] == ["j0", "j2"]
    for job in jobs:
        assert job.wait(10)
    assert jobs[0].state is JobState.DONE and jobs[0].result == "out-j0" and jobs[1].result is None
    assert jobs[2].state is JobState.FAILED and "bad seed" in jobs[2].reason
    assert seen["j0"][-1] == 1.0 and max(seen["j1"]) < 1.0
    queue.shutdown()


def test_a_batch_whose_jobs_are_all_cancelled_stops():
    render = BatchRender(steps=200, step_s=0.01)
    queue = _batch_queue(render, max_batch=2)
    queue.submit(Job("hold", {"hold": True}))
    jobs = [Job(f"c{i}", {"key": "k"}) for i in range(2)]
    for job in jobs:
        queue.submit(job)
    render.gate.set()
    while queue.status()["batch"] != ["c0", "c1"]:
        time.sleep(0.005)
    started = time.monotonic()
    queue.cancel("c0")
    queue.cancel("c1")
    assert all(job.wait(1) for job in jobs) and time.monotonic() - started < 1.0  # not the 2 s the batch needs
    assert [j.state for j in jobs] == [JobState.CANCELLED] * 2
    assert queue.shutdown(timeout=2)


def test_batching_needs_its_functions():
    with pytest.raises(ValueError, match="needs batch_key and run_batch"):
        JobQueue(lambda job, progress: None, max_batch=2)
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        JobQueue(lambda job, progress: None, max_batch=0)


def test_a_batch_runner_that_loses_a_result_fails_its_jobs_instead_of_hanging():
    render = BatchRender(steps=2)
    queue = JobQueue(render.single, max_batch=2, batch_key=lambda job: job.request.get("key"),
                     run_batch=lambda jobs, progress: render(jobs, progress)[:1])
    queue.submit(Job("hold", {"hold": True}))
    jobs = [Job(f"s{i}", {"key": "k"}) for i in range(2)]
    for job in jobs:
        queue.submit(job)
    render.gate.set()
    assert all(job.wait(10) for job in jobs)
    assert [j.state for j in jobs] == [JobState.FAILED] * 2 and "1 results for 2 jobs" in jobs[0].reason
    queue.shutdown()
