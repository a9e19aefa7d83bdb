"""`msanii-osc` as a process, driven by liblo's command-line tools (oscsend -> server -> oscdump), plus clean
shutdown on SIGTERM/SIGINT mid-render and clear start-up errors."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from osc_helpers import REPO, OscClient, ServerProcess, free_udp_port

pytestmark = pytest.mark.skipif(not (shutil.which("oscsend") and shutil.which("oscdump")),
                                reason="liblo-tools (oscsend/oscdump) not installed")


class OscDump:
    """`oscdump -L PORT` (line-buffered) collecting lines such as `<timetag> /msanii/done ssfif "id" "/p" 5 7 0`."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.strip()))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> tuple[float, re.Match]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines:
                    match = regex.search(line)
                    if match:
                        return at, match
                if time.monotonic() > deadline:
                    raise AssertionError(f"no line matching {pattern!r}; got {[l for _, l in self.lines][-8:]}")
                self._cond.wait(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def oscsend(port: int, address: str, types: str, *args) -> None:
    subprocess.run(["oscsend", "localhost", str(port), address, types, *map(str, args)], check=True, timeout=10)


def test_oscsend_generate_oscdump_receives_accepted_progress_done(tiny_bundle, tmp_path):
    reply_port = free_udp_port()
    dump = OscDump(reply_port)
    server = ServerProcess(["--bundle", str(tiny_bundle), "--reply-port", str(reply_port),
                            "--output-dir", str(tmp_path / "out"), "--engine-device", "cpu"])
    try:
        time.sleep(0.3)  # let oscdump bind
        # Warm the engine once (first onnxruntime run pays graph set-up), then time a default 5 s render.
        oscsend(server.port, "/msanii/generate", "sfi", "warm", 0.5, 1)
        dump.wait_for(r'/msanii/done ssfif "warm"')
        t0 = time.monotonic()
        oscsend(server.port, "/msanii/generate", "sfi", "clip-5s", 5.0, 42)
        dump.wait_for(r'/msanii/accepted si "clip-5s" 0')
        dump.wait_for(r'/msanii/progress sf "clip-5s" 0\.[1-9]')  # a mid-render report (throttled: any)
        done_at, done = dump.wait_for(r'/msanii/done ssfif "clip-5s" "([^"]+)" 5\.0+ 42 0\.0+')
        latency = done_at - t0
        path = Path(done.group(1))
        assert path.is_absolute() and path.parent == (tmp_path / "out").resolve()
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, 220500, "PCM_24")
        audio, _ = sf.read(str(path), dtype="float32")
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.0
        progress = [l for _, l in dump.lines if '/msanii/progress sf "clip-5s"' in l]
        assert progress[-1].endswith("1.000000")
        # Status and a bad request through the same real tools.
        oscsend(server.port, "/msanii/status", "")
        dump.wait_for(r'/msanii/status siss\w* "idle" 0 "tiny-test" "cpu"')
        oscsend(server.port, "/msanii/generate", "ss", "bad", "five")
        dump.wait_for(r'/msanii/fail ss "bad" "seconds must be a number, got string \'five\'"')
        print(f"\nround trip oscsend -> done for a 5 s clip (tiny bundle, its default settings, CPU): "
              f"{latency:.2f} s; {len(progress)} progress replies")
    finally:
        server.stop()
        dump.close()


def test_sigterm_mid_render_cancels_and_leaves_no_partial_file(tiny_bundle, tmp_path):
    """(SIGINT takes the same path; tests/test_bridge_audition.py stops its server with it.)"""
    out = tmp_path / "out"
    server = ServerProcess(["--bundle", str(tiny_bundle), "--reply-port", "0", "--output-dir", str(out),
                            "--engine-device", "cpu"])
    client = OscClient(("127.0.0.1", server.port))
    try:
        client.send("/msanii/set", "steps", 500)
        client.send("/msanii/generate", "doomed", 20.0)
        client.send("/msanii/generate", "waiting", 1.0)
        client.wait_for("/msanii/progress", lambda m: m.args[0] == "doomed" and m.args[1] > 0, timeout=60)
        t0 = time.monotonic()
        rc = server.signal(signal.SIGTERM, timeout=30)
        took = time.monotonic() - t0
        assert rc == 0, server.output
        assert "stopped" in server.output
        fails = {m.args[0]: m.args[1] for m in client.of("/msanii/fail")}
        assert fails == {"doomed": "server shutting down", "waiting": "server shutting down"}
        assert list(out.iterdir()) == [], list(out.iterdir())
        assert took < 10, f"shutdown took {took:.1f} s"
    finally:
        client.close()
        server.stop()


def test_startup_errors_are_clear(tmp_path):
    bad = tmp_path / "not-a-bundle"
    bad.mkdir()
    run = subprocess.run([sys.executable, "-m", "bridge.cli", "--bundle", str(bad), "--host", "0.0.0.0",
                          "--output-dir", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert "WARNING: binding 0.0.0.0" in run.stderr
    assert f"cannot load bundle {bad}" in run.stderr and "manifest.json" in run.stderr
    run = subprocess.run([sys.executable, "-m", "bridge.cli", "--bundle", str(bad), "--allow-input",
                          str(tmp_path / "nope")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert f"allowed input folder {tmp_path / 'nope'} does not exist" in run.stderr
