"""The server as an unprivileged user (tests run as root, which ignores file permissions, so the server process
drops to `nobody` itself): a read-only output folder is refused at start with one line, a folder that turns
read-only while it serves fails each job with the reason and no partial file, and the server keeps answering."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import soundfile as sf

from osc_helpers import REPO, OscClient, ServerProcess, free_udp_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs a root test run")
NOBODY = pwd.getpwnam("nobody").pw_uid
RUNNER = str(REPO / "tests" / "run_unprivileged.py")


@pytest.fixture()
def world(tiny_bundle):
    """A folder anyone may traverse (pytest's tmp is root-only) holding a copy of the bundle nobody can read."""
    root = Path(tempfile.mkdtemp(prefix="msanii-unpriv-"))
    os.chmod(root, 0o755)
    shutil.copytree(tiny_bundle, root / "bundle")
    for path in [root / "bundle", *(root / "bundle").rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def server_args(world: Path, out: Path) -> list[str]:
    return ["--bundle", str(world / "bundle"), "--output-dir", str(out), "--workers", "0", "--threads", "1",
            "--reply-port", "0"]


def start_as_nobody(world: Path, out: Path) -> ServerProcess:
    env = {"HOME": str(world), "PYTHONDONTWRITEBYTECODE": "1"}
    return ServerProcess(server_args(world, out), env=env, timeout=120,
                         launcher=[sys.executable, RUNNER, str(NOBODY), "--"])


def test_read_only_output_folder_is_refused_at_start(world):
    out = world / "read-only"
    out.mkdir(mode=0o755)  # root's: nobody may read it, not write it
    env = {**os.environ, "HOME": str(world), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, RUNNER, str(NOBODY), "--", "--port", str(free_udp_port()),
                           *server_args(world, out)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "note: audition" not in line]
    assert lines == [f"msanii-osc: the output folder {out} is not writable by this user"], proc.stderr
    assert list(out.iterdir()) == []


def test_output_folder_turning_read_only_fails_jobs_cleanly(world):
    out = world / "out"
    out.mkdir()
    os.chown(out, NOBODY, -1)
    server = start_as_nobody(world, out)
    client = OscClient(("127.0.0.1", server.port))
    try:
        client.send("/msanii/set", "steps", 1)
        client.send("/msanii/set", "gl_iters", 1)
        client.send("/msanii/generate", "first", 0.3)
        first = Path(client.wait_for("/msanii/done", timeout=120).args[1])
        assert first.stat().st_uid == NOBODY
        os.chmod(out, 0o555)  # the folder turns read-only under the running server
        client.send("/msanii/generate", "blocked", 0.3)
        reason = client.wait_for("/msanii/fail", lambda m: m.args[0] == "blocked", timeout=120).args[1]
        assert "Permission denied" in reason and str(out) in reason, reason
        client.send("/msanii/set", "output_dir", "sub")
        reason = client.wait_for("/msanii/fail", lambda m: m.args[0] == "/msanii/set", timeout=10).args[1]
        assert reason.startswith("cannot create output_dir") and "Permission denied" in reason, reason
        client.send("/msanii/ping", "alive")
        assert client.wait_for("/msanii/pong", timeout=10).args == ["alive"]
        os.chmod(out, 0o755)
        client.send("/msanii/generate", "again", 0.3)
        again = Path(client.wait_for("/msanii/done", lambda m: m.args[0] == "again", timeout=120).args[1])
        assert sorted(p.name for p in out.iterdir()) == sorted([first.name, again.name])  # no temp, no partial
        assert sf.info(str(again)).frames == round(0.3 * 44100)
        assert "Traceback" not in server.output and "internal error" not in server.output, server.output
    finally:
        client.close()
        os.chmod(out, 0o755)
        assert server.signal(signal.SIGTERM) == 0, server.output
