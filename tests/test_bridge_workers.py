"""`OscBridge` with supervised engine worker processes (engine.serving.workers.WorkerPool): real spawned processes, the
real tiny engine in each, real UDP clients. Two workers render two jobs at the same time; a worker killed with
SIGKILL mid-render fails only its job ("worker crashed"), leaves no file, is restarted (counted in
/msanii/status) and the queued job still completes; cancel still stops a worker's render within a step."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.serving.workers import plan_workers
from osc_helpers import OscClient


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workers_out")


@pytest.fixture(scope="module")
def bridge(tiny_bundle, out_dir):
    """Two CPU workers with one thread each (this machine has two cores); both tests share them."""
    started = time.monotonic()
    server = OscBridge(None, PathPolicy(out_dir), port=0, reply_port=None, max_pending=4,
                       settings=RenderSettings(steps=3, gl_iters=3),
                       workers=plan_workers(tiny_bundle, 2, ["cpu"], threads=1)).start()
    print(f"\n2 workers ready in {time.monotonic() - started:.1f} s")
    yield server
    server.close()
    assert all(w["state"] == "stopped" for w in server.jobs.status()["worker_states"])


@pytest.fixture()
def client(bridge):
    c = OscClient(bridge.address)
    yield c
    c.close()


def set_steps(client: OscClient, steps: int) -> None:
    sent = time.monotonic()
    client.send("/msanii/set", "steps", steps)
    client.wait_for("/msanii/set", lambda m: m.args == ["steps", steps] and m.at >= sent, timeout=5)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def assert_clip(path: str, seconds: float) -> None:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 44100 and audio.shape == (round(seconds * 44100), 2)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_two_workers_render_two_jobs_at_the_same_time(bridge, client, out_dir):
    set_steps(client, 80)
    client.send("/msanii/generate", "both-a", 3.0, 1)
    client.send("/msanii/generate", "both-b", 3.0, 2)
    assert client.wait_for("/msanii/accepted", lambda m: m.args[0] == "both-a").args == ["both-a", 0]
    assert client.wait_for("/msanii/accepted", lambda m: m.args[0] == "both-b").args == ["both-b", 0]
    seen_running = set()
    deadline = time.monotonic() + 50
    while len(client.of("/msanii/done")) < 2 and time.monotonic() < deadline:
        seen_running.add(tuple(sorted(bridge.jobs.status()["running_ids"])))
        time.sleep(0.02)
    done = {m.args[0]: m for m in client.of("/msanii/done")}
    assert set(done) == {"both-a", "both-b"}, client.received[-5:]
    # Each job's render interval (first progress past 0 -> done) overlaps the other's.
    spans = {}
    for job in done:
        started = min(m.at for m in client.of("/msanii/progress", job) if 0 < m.args[1] < 1)
        spans[job] = (started, done[job].at)
    (a0, a1), (b0, b1) = spans["both-a"], spans["both-b"]
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0, spans
    assert ("both-a", "both-b") in seen_running
    pids = {w["pid"] for w in bridge.jobs.status()["worker_states"]}
    assert len(pids) == 2 and os.getpid() not in pids
    for job, seconds in (("both-a", 3.0), ("both-b", 3.0)):
        assert_clip(done[job].args[1], seconds)
    print(f"renders overlapped for {overlap:.2f} s of {a1 - a0:.2f} / {b1 - b0:.2f} s")
    for f in out_dir.iterdir():
        f.unlink()


def test_sigkill_mid_render_fails_that_job_restarts_the_worker_and_the_queue_goes_on(bridge, client, out_dir):
    set_steps(client, 1000)
    client.send("/msanii/generate", "victim", 10.0, 1)
    client.send("/msanii/generate", "blocker", 10.0, 2)  # keeps the other worker busy
    client.wait_for("/msanii/progress", lambda m: m.args[0] == "victim" and m.args[1] > 0)
    client.wait_for("/msanii/progress", lambda m: m.args[0] == "blocker" and m.args[1] > 0)
    set_steps(client, 3)
    client.send("/msanii/generate", "next", 1.0, 3)
    assert client.wait_for("/msanii/accepted", lambda m: m.args[0] == "next").args == ["next", 1]
    victim = next(w for w in bridge.jobs.status()["worker_states"] if w["job"] == "victim")
    os.kill(victim["pid"], signal.SIGKILL)
    fail = client.wait_for("/msanii/fail", lambda m: m.args[0] == "victim", timeout=10)
    assert fail.args == ["victim", "worker crashed"]
    assert not client.of("/msanii/done", "victim")
    client.send("/msanii/status")
    assert client.wait_for("/msanii/status").args[10] == 1  # restarts
    # Cancelling the other worker's job frees it for the queued one while the killed one restarts.
    sent = client.send("/msanii/cancel", "blocker")
    cancelled = client.wait_for("/msanii/fail", lambda m: m.args == ["blocker", "cancelled"], timeout=10)
    assert cancelled.at - sent < 2.0, "cancel must stop a worker's render within a step"
    done = client.wait_for("/msanii/done", lambda m: m.args[0] == "next", timeout=45)
    assert_clip(done.args[1], 1.0)
    deadline = time.monotonic() + 40
    while any(w["state"] != "idle" for w in bridge.jobs.status()["worker_states"]):
        assert time.monotonic() < deadline, bridge.jobs.status()["worker_states"]
        time.sleep(0.1)
    restarted = next(w for w in bridge.jobs.status()["worker_states"] if w["restarts"] == 1)
    assert restarted["pid"] != victim["pid"]
    # Both workers (the restarted one too) take a job at once again.
    for job in ("after-1", "after-2"):
        client.send("/msanii/generate", job, 1.0, 4)
        assert client.wait_for("/msanii/accepted", lambda m, j=job: m.args[0] == j).args == [job, 0]
    after = [client.wait_for("/msanii/done", lambda m, j=job: m.args[0] == j, timeout=30) for job in
             ("after-1", "after-2")]
    client.send("/msanii/status")
    status = client.wait_for("/msanii/status", lambda m: m.args[0] == "idle", timeout=5).args
    assert status[2:4] == ["tiny-test", "cpu"] and status[8:11] == [2, 0, 1]  # workers, busy, restarts
    # Only announced clips exist: nothing partial, no temp file from the killed worker.
    announced = {Path(m.args[1]).name for m in [done, *after]}
    assert files(out_dir) == sorted(announced)
    crash = bridge.jobs.status()["crashes"][-1]
    assert crash["job"] == "victim" and crash["exitcode"] == -signal.SIGKILL
