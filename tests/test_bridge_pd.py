"""Headless Pure Data runs examples/msanii.pd against the OSC bridge: it registers its reply port, asks for a
clip, shows progress and loads the finished file into its arrays (netsend/netreceive -u -b, oscformat/oscparse,
soundfiler)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from osc_helpers import REPO, free_udp_port

PATCH = REPO / "examples" / "msanii.pd"
pytestmark = pytest.mark.skipif(shutil.which("pd") is None, reason="Pure Data (puredata-core) not installed")


class HeadlessPd:
    def __init__(self, *sends: str) -> None:
        cmd = ["pd", "-nogui", "-nosound", "-nomidi", "-stderr", "-open", str(PATCH)]
        for message in sends:
            cmd += ["-send", message]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"pd printed no {pattern!r}:\n" + "\n".join(self.lines[-20:]))
                self._cond.wait(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_pd_objects_exist_in_this_pd():
    """The patch needs vanilla's UDP binary netsend/netreceive and the OSC codec objects."""
    run = subprocess.run(["pd", "-version"], capture_output=True, text=True, timeout=30)
    version = re.search(r"Pd-(\d+)\.(\d+)", run.stdout + run.stderr)
    assert version and (int(version.group(1)), int(version.group(2))) >= (0, 51)
    text = PATCH.read_text()
    for obj in ("netsend -u -b", "netreceive -u -b", "oscformat msanii generate", "oscformat msanii inpaint",
                "oscformat msanii register", "oscparse", "soundfiler"):
        assert f" {obj}" in text, obj


def test_headless_pd_patch_generates_and_loads_the_clip(tiny_bundle, tmp_path):
    engine = Engine.load(tiny_bundle, device="cpu", threads=2)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sf.write(str(inputs / "drums.wav"), [[0.1, -0.1]] * 44100, 44100, subtype="PCM_16")
    bridge = OscBridge(engine, PathPolicy(tmp_path / "out", [inputs]), port=0, reply_port=None,
                       settings=RenderSettings(steps=4, gl_iters=4)).start()
    reply_port = free_udp_port()
    pd = HeadlessPd(f"msanii-server {bridge.address[1]}", f"msanii-reply {reply_port}", "msanii-generate 2",
                    f"msanii-input {inputs / 'drums.wav'}", "msanii-inpaint 0.25 0.5")
    try:
        pd.wait_for(r"msanii: registered 127\.0\.0\.1 " + str(reply_port))
        pd.wait_for(r"msanii: accepted pd-gen-0 0")
        pd.wait_for(r"msanii: progress pd-gen-0 ")
        done = pd.wait_for(r"msanii: done pd-gen-0 (\S+) 2 \S+ 0$")  # ... seconds, seed, bpm (0: no tempo)
        pd.wait_for(r"msanii-take-bpm: 0$")  # the patch shows the take's tempo
        path = Path(done.group(1))
        frames = sf.info(str(path)).frames
        assert frames == 2 * 44100
        loaded = pd.wait_for(r"msanii-loaded: (\d+)")
        assert int(loaded.group(1)) == frames  # soundfiler read the whole file into msanii-left/right
        # The patch's inpaint request reaches the server with Pd's types (symbol path, float seconds).
        inpaint = pd.wait_for(r"msanii: (done|fail) pd-inpaint-0 (.+)")
        detail = inpaint.group(2).replace("\\ ", " ")  # pd's print escapes spaces inside one symbol
        if inpaint.group(1) == "fail":  # until the engine's inpaint task is wired into the bridge
            assert detail.startswith("not available"), detail
        else:
            assert Path(detail.split()[0]).is_file()
    finally:
        pd.close()
        bridge.close()
    assert not [l for l in pd.lines if l.startswith("error:") and "listen" not in l and "9001" not in l], pd.lines
