"""Serving renders to many clients: what the OSC bridge (and any other long-running front end) runs jobs on.

    jobs.py            JobQueue: a bounded queue and one render thread in this process (plus batching)
    workers.py         WorkerPool: the same interface over supervised worker processes (crash isolation, GPUs)
    worker_slot.py     one supervised worker process: start, wait for its engine, restart when it dies
    worker_process.py  inside a worker: device and thread pinning, the job loop

Nothing here knows about tasks or OSC: a job carries an opaque request and a `render(engine, request, progress)`
callable renders it. No torch is imported at load time, so a worker can pin "cuda:N" before torch starts.
"""
from engine.serving.jobs import (Cancelled, DuplicateJob, Job, JobQueue, JobState, QueueClosed, QueueFull,
                                 describe_error)
from engine.serving.worker_process import WorkerSpec, plan_workers, select_device
from engine.serving.workers import NoWorkers, WorkerPool, WorkerStartError

__all__ = ["Cancelled", "DuplicateJob", "Job", "JobQueue", "JobState", "NoWorkers", "QueueClosed", "QueueFull",
           "WorkerPool", "WorkerSpec", "WorkerStartError", "describe_error", "plan_workers", "select_device"]
