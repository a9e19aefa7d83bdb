"""`msanii-osc --workers N` as a real process tree: the server, its spawned worker process, real UDP. A worker
killed with SIGKILL is seen, its job fails "worker crashed", it is restarted and serves again; SIGTERM stops the
server and leaves no worker process behind; bad --workers/--devices are one-line start-up errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from osc_helpers import REPO, OscClient, ServerProcess


def worker_processes(server: ServerProcess) -> list[psutil.Process]:
    """The server's engine workers: its multiprocessing "spawn" children (not the resource tracker)."""
    children = psutil.Process(server.proc.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline()) and
            "resource_tracker" not in " ".join(c.cmdline())]


def test_worker_process_killed_mid_render_is_restarted_and_sigterm_leaves_no_worker(tiny_bundle, tmp_path):
    out = tmp_path / "out"
    server = ServerProcess(["--bundle", str(tiny_bundle), "--reply-port", "0", "--output-dir", str(out),
                            "--workers", "1", "--devices", "cpu", "--threads", "1"])
    client = OscClient(("127.0.0.1", server.port))
    try:
        assert "on 1 worker process (cpu, 1 thread each)" in server.output
        (worker,) = worker_processes(server)
        client.send("/msanii/set", "steps", 500)
        client.send("/msanii/generate", "doomed", 10.0, 1)
        client.wait_for("/msanii/progress", lambda m: m.args[0] == "doomed" and m.args[1] > 0, timeout=30)
        client.send("/msanii/set", "steps", 3)
        client.send("/msanii/generate", "queued", 1.0, 2)
        assert client.wait_for("/msanii/accepted", lambda m: m.args[0] == "queued").args == ["queued", 1]
        worker.send_signal(signal.SIGKILL)
        assert client.wait_for("/msanii/fail", lambda m: m.args[0] == "doomed").args == ["doomed", "worker crashed"]
        sent = client.send("/msanii/ping", "alive")  # the server itself never stopped answering
        assert client.wait_for("/msanii/pong", timeout=2).at - sent < 0.5
        done = client.wait_for("/msanii/done", lambda m: m.args[0] == "queued", timeout=45)
        assert [p.name for p in out.iterdir()] == [done.args[1].rsplit("/", 1)[1]]
        (restarted,) = worker_processes(server)
        assert restarted.pid != worker.pid
        client.send("/msanii/status")
        status = client.wait_for("/msanii/status", timeout=5).args
        assert status[:4] == ["idle", 0, "tiny-test", "cpu"] and status[8:11] == [1, 0, 1]
        assert "worker 0" in server.output and "died during job doomed (killed by signal 9)" in server.output
        client.send("/msanii/set", "steps", 500)
        client.send("/msanii/generate", "last", 10.0, 3)
        client.wait_for("/msanii/progress", lambda m: m.args[0] == "last" and m.args[1] > 0, timeout=30)
        assert server.signal(signal.SIGTERM, timeout=30) == 0, server.output
        assert client.wait_for("/msanii/fail", lambda m: m.args[0] == "last").args == ["last", "server shutting down"]
        assert not psutil.pid_exists(restarted.pid) or restarted.status() == psutil.STATUS_ZOMBIE
        assert len(list(out.iterdir())) == 1
    finally:
        client.close()
        server.stop()


def test_bad_worker_options_are_one_line_errors(tiny_bundle, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bridge.cli", "--bundle", str(tiny_bundle), "--output-dir",
                               str(tmp_path / "o"), *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    bad = run("--devices", "cpu,gpu7")
    assert bad.returncode != 0 and "unknown device 'gpu7'" in bad.stderr
    assert "--devices needs worker processes" in run("--workers", "0", "--devices", "cpu").stderr
    assert "--workers must be >= 0" in run("--workers", "-1").stderr
