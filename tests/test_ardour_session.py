"""The Ardour actions in a real, headless Ardour (ardour7-lua / ardour8-lua, dummy audio backend) against a real
msanii-osc on the tiny bundle: a session with a clip on a track, then inpaint a range, continue the region by a
bar and generate two bars at the playhead, with the same code the editor actions run (examples/ardour/
msanii_lib.lua, installed into Ardour's user scripts folder as the README says). Checked from the saved session
XML and the audio files: each new region sits on its own new track at the exact sample position, its audio is the
server's output bit for bit, the original region and its files are untouched, and a stopped server gives a clear
error and no new track."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.client import MsaniiClient
from bridge.handoff import write_pcm
from osc_helpers import REPO, ServerProcess
from task_audio import music

EXAMPLES = REPO / "examples" / "ardour"
DRIVER = REPO / "tests" / "ardour_session.lua"
RATE, BPM = 44100, 96.0
CLIP_AT = RATE  # the clip starts 1 s into the session
HOSTS = ("ardour8-lua", "ardour7-lua", "ardour-lua")


def _ardour_lua() -> str:
    for name in HOSTS:
        if path := shutil.which(name):
            return path
    reason = "Ardour's headless Lua host (ardour7-lua/ardour8-lua) is not installed; ./install.sh installs 'ardour'"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the Ardour test: {reason}")
    pytest.skip(reason)


class Ardour:
    """ardour*-lua runs of tests/ardour_session.lua with a private config folder holding the installed scripts."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "HOME": str(home),
                    # the tree under test, whatever msanii-request is first on PATH
                    "MSANII_REQUEST": f"{shlex.quote(sys.executable)} -m bridge.request_cli"}
        probe = self.run_lua(home / "probe.lua", "print ('MSANII_CONFIG ' .. ARDOUR.user_config_directory (-1))")
        scripts = Path(re.search(r"MSANII_CONFIG (.+)", probe).group(1)) / "scripts"
        scripts.mkdir(parents=True)
        for script in EXAMPLES.glob("*.lua"):  # the install step of README / docs/daw.md
            shutil.copy(script, scripts / script.name)

    def run_lua(self, path: Path, code: str) -> str:
        path.write_text(code)
        return self._run([str(path)])

    def _run(self, args: list[str]) -> str:
        run = subprocess.run([self.binary, *args], cwd=REPO, env=self.env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, f"{self.binary} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        return run.stdout

    def driver(self, *args: object) -> str:
        return self._run([str(DRIVER), *map(str, args)])


def results(stdout: str) -> dict[str, dict[str, str]]:
    found = {}
    for line in stdout.splitlines():
        if line.startswith("MSANII_RESULT "):
            _, action, rest = line.split(" ", 2)
            found[action] = dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", rest))
    return found


def errors(stdout: str) -> dict[str, str]:
    return dict(line.split(" ", 2)[1:] for line in stdout.splitlines() if line.startswith("MSANII_ERROR "))


class SessionFile:
    """The saved .ardour XML: each track's regions (samples) and their source files."""

    def __init__(self, folder: Path, name: str, superclock: int) -> None:
        self.root = ET.parse(folder / f"{name}.ardour").getroot()
        self.audio = folder / "interchange" / name / "audiofiles"
        self.superclock = superclock
        self.sources = {s.get("id"): s.get("name") for s in self.root.iter("Source")}

    def samples(self, value: str) -> int:
        ticks = int(value.split("@")[0].lstrip("a"))  # audio time: superclock ticks ("a<ticks>[@<pos>]")
        assert ticks * RATE % self.superclock == 0, f"{value} is not a whole sample"
        return ticks * RATE // self.superclock

    def tracks(self) -> list[str]:
        return [r.get("name") for r in self.root.iter("Route") if r.get("audio-playlist")]

    def regions(self, track: str) -> list[dict]:
        [route] = [r for r in self.root.iter("Route") if r.get("name") == track]
        [playlist] = [p for p in self.root.iter("Playlist") if p.get("id") == route.get("audio-playlist")]
        out = []
        for region in playlist.iter("Region"):
            n = int(region.get("channels"))
            out.append({"position": self.samples(region.get("length").split("@")[1]),
                        "length": self.samples(region.get("length")), "start": self.samples(region.get("start")),
                        "files": [self.audio / self.sources[region.get(f"source-{c}")] for c in range(n)],
                        "xml": dict(region.attrib)})
        return out

    def audio_of(self, region: dict) -> np.ndarray:
        """The samples the region plays: its source files over [start, start + length), [frames, channels]."""
        chans = [sf.read(str(f), dtype="float32", start=region["start"], stop=region["start"] + region["length"])[0]
                 for f in region["files"]]
        return np.stack(chans, axis=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ardour_binary() -> str:
    return _ardour_lua()


def test_inpaint_continue_generate_in_a_real_ardour_session(ardour_binary, tiny_bundle, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    ardour = Ardour(ardour_binary, tmp_path)
    clip = music(6.0, RATE, 2, seed=4).astype(np.float32)
    sf.write(str(tmp_path / "clip.wav"), clip, RATE, subtype="FLOAT")
    write_pcm(tmp_path / "clip.wav", tmp_path / "clip.pcm")

    created = ardour.driver("create", tmp_path / "song", "song", RATE, BPM, tmp_path / "clip.pcm", CLIP_AT)
    superclock = int(re.search(r"MSANII_SUPERCLOCK (\d+)", created).group(1))
    before = SessionFile(tmp_path / "song", "song", superclock)
    [take] = before.regions("take")
    assert (take["position"], take["length"]) == (CLIP_AT, clip.shape[0])
    assert np.array_equal(before.audio_of(take), clip)  # the clip itself is on the timeline, bit for bit
    hashes = {f: sha256(f) for f in take["files"]}

    server = ServerProcess(["--bundle", str(tiny_bundle), "--output-dir", str(out), "--allow-input", str(work),
                            "--engine-device", "cpu"])
    try:
        # keep CI short: few steps, few phase iterations (a patient client: this is set-up, not under test)
        with MsaniiClient("127.0.0.1", server.port, timeout=30) as client:
            client.set("steps", 4)
            client.set("gl_iters", 4)
        s, e = 2 * RATE, 3 * RATE  # the "selected range": 1.0-2.0 s into the clip
        edited = ardour.driver("edit", tmp_path / "song", "song", work, server.port,
                               "inpaint", s, e, "continue", 1, "generate", CLIP_AT, 2)
        with MsaniiClient("127.0.0.1", server.port, timeout=30) as client:
            client.set("steps", 1000)  # long enough to be cancelled mid-render
        cancelled = ardour.driver("edit", tmp_path / "song", "song", work, server.port, "generate-cancel", 0, 8)
    finally:
        server.stop()
    assert not errors(edited), edited
    done = results(edited)
    after = SessionFile(tmp_path / "song", "song", superclock)

    # inpaint: a new track, one region at exactly the range, the server's samples for the range
    [inpaint] = after.regions("take msanii inpaint")
    assert (inpaint["position"], inpaint["length"]) == (s, e - s)
    rendered, rate = sf.read(done["inpaint"]["output"], dtype="float32")
    assert rate == RATE and Path(done["inpaint"]["output"]).parent == out.resolve()
    before_ctx = min(2 * RATE, s - CLIP_AT)  # the region's own audio as context: 1 s before, 2 s after
    assert int(done["inpaint"]["offset"]) == before_ctx
    assert np.array_equal(after.audio_of(inpaint), rendered[before_ctx:before_ctx + e - s])
    span = clip[s - before_ctx - CLIP_AT:e + 2 * RATE - CLIP_AT]  # what the server was given
    margin = int(0.05 * RATE)
    assert rendered.shape == span.shape
    assert np.array_equal(rendered[:before_ctx - margin], span[:before_ctx - margin])
    assert not np.array_equal(rendered[before_ctx:e - s + before_ctx], span[before_ctx:e - s + before_ctx])

    # continue: one bar of the session's 96 BPM 4/4 (2.5 s) right after the region's end
    bar = int(4 * 60 / BPM * RATE)
    [cont] = after.regions("take msanii continue")
    assert (cont["position"], cont["length"]) == (CLIP_AT + clip.shape[0], bar)
    extended = sf.read(done["continue"]["output"], dtype="float32")[0]
    assert np.array_equal(extended[:clip.shape[0]], clip)  # the whole 6 s region was the context, untouched
    assert np.array_equal(after.audio_of(cont), extended[clip.shape[0]:clip.shape[0] + bar])

    # generate: two bars at the playhead
    [gen] = after.regions("msanii generate")
    assert (gen["position"], gen["length"]) == (CLIP_AT, 2 * bar)
    generated = sf.read(done["generate"]["output"], dtype="float32")[0]
    assert np.array_equal(after.audio_of(gen), generated[:2 * bar])

    # the original: same region, same files, bit for bit; nothing else on its track
    assert [r["xml"] for r in after.regions("take")] == [take["xml"]]
    assert {f: sha256(f) for f in take["files"]} == hashes

    # Cancel in the progress window: the job is cancelled on the server, nothing is placed
    assert errors(cancelled) == {"generate-cancel": "msanii: cancelled"}, cancelled
    assert int(re.search(r"MSANII_PROGRESS_LINES (\d+)", cancelled).group(1)) >= 1
    assert SessionFile(tmp_path / "song", "song", superclock).tracks() == after.tracks()

    # the server is gone now: a clear error, no new track, the session still saves
    tracks = after.tracks()
    down = ardour.driver("edit", tmp_path / "song", "song", work, server.port, "inpaint", s, e)
    message = errors(down)["inpaint"]
    assert message == (f"msanii: no msanii-osc server answered at udp://127.0.0.1:{server.port} within 5 s "
                       "(registering the reply port); is msanii-osc running on that port?")
    assert SessionFile(tmp_path / "song", "song", superclock).tracks() == tracks


def test_the_editor_actions_load_in_ardours_lua(ardour_binary, tmp_path):
    """The three editor actions parse in Ardour's own Lua, declare themselves as EditorActions and build their
    action (the editor selection they then read exists only in the GUI)."""
    ardour = Ardour(ardour_binary, tmp_path)
    actions = sorted(p.name for p in EXAMPLES.glob("msanii_*.lua") if p.name not in ("msanii_lib.lua",
                                                                                     "msanii_feed.lua"))
    assert actions == ["msanii_continue.lua", "msanii_generate.lua", "msanii_inpaint_range.lua"]
    code = "\n".join(
        ["local scripts = ARDOUR.LuaAPI.build_filename (ARDOUR.user_config_directory (-1), 'scripts')"]
        + [f"""do
    local desc
    ardour = function (d) desc = d end
    factory, action_params = nil, nil
    dofile (scripts .. '/{name}')
    local params = action_params ()
    print ('MSANII_ACTION {name} ' .. desc.type .. ' | ' .. desc.name .. ' | ' .. type (factory (params))
           .. ' | ' .. tostring (params.port ~= nil and params.work_dir ~= nil))
end""" for name in actions])
    printed = ardour.run_lua(tmp_path / "load_actions.lua", code)
    found = sorted(line.split(" ", 2)[2] for line in printed.splitlines() if line.startswith("MSANII_ACTION "))
    assert found == ["EditorAction | msanii: Continue Region | function | true",
                     "EditorAction | msanii: Generate at Playhead | function | true",
                     "EditorAction | msanii: Inpaint Range | function | true"], printed
