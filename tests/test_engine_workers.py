"""engine.serving.WorkerPool on its own, with real spawned worker processes holding the real tiny engine: a GPU-style
error recycles the worker, a native crash (abort) is a "worker crashed" failure and a restart, a worker that cannot
load its bundle is a clear start-up error; device and thread planning."""
from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from engine.serving.jobs import Job, JobState
from engine.serving.worker_process import WorkerSpec, select_device
from engine.serving.workers import CRASHED, WorkerPool, WorkerStartError, plan_workers
from engine.tasks.generate import generate


def render_by_request(engine, request: str, progress):
    """Worker-side test render: the request names what happens."""
    progress(0.5)
    if request == "oom":
        raise RuntimeError("CUDA error: out of memory (simulated)")
    if request == "abort":
        os.abort()  # a native crash: SIGABRT, no Python cleanup
    return f"{engine.name} in {os.getpid()}"


def run(pool: WorkerPool, job_id: str, request: str) -> Job:
    job = Job(job_id, request)
    pool.submit(job)
    assert job.wait(60), job
    return job


def test_gpu_error_recycles_the_worker_and_a_native_crash_is_reported_and_restarted(tiny_bundle):
    pool = WorkerPool(render_by_request, [WorkerSpec(str(tiny_bundle), "cpu", 1)], cancel_grace=5)
    try:
        first = run(pool, "a", "ok")
        assert first.state is JobState.DONE and first.result.startswith("tiny-test in ")
        pid = pool.status()["worker_states"][0]["pid"]
        oom = run(pool, "b", "oom")
        assert oom.state is JobState.FAILED and "out of memory" in oom.reason
        crash = run(pool, "c", "abort")
        assert crash.state is JobState.FAILED and crash.reason == CRASHED
        after = run(pool, "d", "ok")
        assert after.state is JobState.DONE
        status = pool.status()
        assert status["restarts"] == 2 and status["done"] == 2 and status["failed"] == 2
        assert status["crashes"][-1]["exitcode"] == -signal.SIGABRT and status["crashes"][-1]["job"] == "c"
        assert status["worker_states"][0]["pid"] not in (pid, None)
    finally:
        assert pool.shutdown(timeout=30)
    assert not multiprocessing.active_children()


def test_a_worker_that_cannot_load_is_a_clear_start_error(tmp_path):
    with pytest.raises(WorkerStartError, match=r"worker 0 \(cpu\): .*manifest\.json"):
        WorkerPool(render_by_request, [WorkerSpec(str(tmp_path), "cpu", 1)], start_timeout=120)
    assert not multiprocessing.active_children()


def test_plan_workers_shares_cores_and_checks_devices(monkeypatch):
    specs = plan_workers("/b", 3, ["cuda:0", "cuda:1"], threads=2)
    assert [s.device for s in specs] == ["cuda:0", "cuda:1", "cuda:0"] and {s.threads for s in specs} == {2}
    cores = len(os.sched_getaffinity(0))
    assert plan_workers("/b", 2, ["cpu"])[0].threads == max(1, cores // 2)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        plan_workers("/b", 1, ["gpu"])
    with pytest.raises(ValueError, match="workers must be >= 1"):
        plan_workers("/b", 0, ["cpu"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert select_device("cuda:1") == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(ValueError, match="lists only 2"):
        select_device("cuda:2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert select_device("cuda:1") == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert select_device("cpu") == "cpu"


def render_backend(engine, request, progress):
    """Worker-side: which backend the worker's engine runs, and a short real render on it."""
    result = generate(engine, 0.5, seed=1, steps=2, gl_iters=2, callback=progress)
    return engine.backend, getattr(engine.denoiser, "precision", None), result.info["backend"]


def test_a_worker_runs_the_torch_backend_its_spec_asks_for(program_bundle):
    specs = plan_workers(program_bundle, 1, ["cpu"], 1, backend="torch", precision="bf16")
    pool = WorkerPool(render_backend, specs)
    try:
        job = run(pool, "t", "go")
        assert job.state is JobState.DONE and job.result == ("torch", "bf16", "torch")
    finally:
        assert pool.shutdown(timeout=30)
