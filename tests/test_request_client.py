"""`msanii-request` against a real OSC bridge (tiny engine, real UDP on 127.0.0.1): it registers its own reply
port, prints the finished file's path, the server's fail reason, cancels on Ctrl-C, and says when no server is
there. The CLI runs as a real subprocess (exit codes, stdout, stderr as a DAW script sees them)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.client import Cancelled, MsaniiClient, NoServer, RequestFailed
from bridge.handoff import read_pcm
from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from osc_helpers import REPO, ServerProcess, free_udp_port
from task_audio import music

FAST = RenderSettings(steps=3, gl_iters=3)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine.load(tiny_bundle, device="cpu", threads=2)


@pytest.fixture()
def dirs(tmp_path):
    out, inputs, work = tmp_path / "out", tmp_path / "inputs", tmp_path / "inputs" / "work"
    work.mkdir(parents=True)
    out.mkdir()
    return out, inputs, work


@pytest.fixture()
def bridge(engine, dirs):
    out, inputs, _ = dirs
    # The default reply port goes to a port nobody reads: only a registered client hears anything.
    server = OscBridge(engine, PathPolicy(out, [inputs]), port=0, reply_port=free_udp_port(), settings=FAST).start()
    yield server
    server.close()


def request(*args: str, port: int, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.request_cli", *args, "--port", str(port)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_generate_prints_the_path_and_plain_progress(bridge, dirs):
    t0 = time.monotonic()
    run = request("generate", "--seconds", "2", "--seed", "5", "--id", "take", port=bridge.address[1])
    elapsed = time.monotonic() - t0
    assert run.returncode == 0, run.stderr
    path = Path(run.stdout.strip())
    assert run.stdout.count("\n") == 1 and path.is_absolute() and path.parent == dirs[0].resolve()
    assert path.name.startswith("take-") and sf.info(str(path)).frames == 2 * 44100
    lines = run.stderr.splitlines()
    assert "msanii-request: accepted (0 jobs ahead)" in lines
    assert "msanii-request: progress 100%" in lines  # not a terminal: plain lines, no tqdm bar
    assert any(line.startswith("msanii-request: done in ") and "seed 5" in line for line in lines)
    print(f"msanii-request generate 2 s (tiny bundle, warm server): {elapsed:.2f} s round trip")


def test_inpaint_stacks_channel_files_cuts_the_span_and_writes_pcm(bridge, dirs):
    """Ardour's shape: one mono float file per channel; the span with context goes to the server."""
    out, inputs, work = dirs
    rate = 44100
    audio = music(4.0, rate, 2, seed=3).astype(np.float32)
    left, right = inputs / "take%L.wav", inputs / "take%R.wav"
    sf.write(str(left), audio[:, 0], rate, subtype="FLOAT")
    sf.write(str(right), audio[:, 1], rate, subtype="FLOAT")
    before = left.read_bytes(), right.read_bytes()
    span = (22050, 22050 + 2 * rate)  # 0.5 s .. 2.5 s of the take; the region is its middle second
    pcm = work / "result.pcm"
    run = request("inpaint", "--in", str(left), "--in", str(right), "--span", f"{span[0]}:{span[1]}",
                  "--region", "0.5-1.5", "--seed", "2", "--work-dir", str(work), "--pcm", str(pcm),
                  "--id", "fix", port=bridge.address[1])
    assert run.returncode == 0, run.stderr
    result, result_rate = sf.read(run.stdout.strip(), dtype="float32")
    assert result_rate == rate and result.shape == (2 * rate, 2)
    assert sf.info(run.stdout.strip()).subtype == "FLOAT"  # the edit keeps the cut's own format
    crop = audio[span[0]:span[1]]
    keep = int(0.45 * rate)  # outside the region the samples are the input's own, bit for bit
    assert np.array_equal(result[:keep], crop[:keep]) and np.array_equal(result[-keep:], crop[-keep:])
    assert not np.array_equal(result[keep:-keep], crop[keep:-keep])
    assert (left.read_bytes(), right.read_bytes()) == before  # the "session" files are only read
    [cut] = [p for p in work.iterdir() if p.suffix == ".wav"]
    assert cut.name.startswith("fix-") and np.array_equal(sf.read(str(cut), dtype="float32")[0], crop)
    planar, pcm_rate = read_pcm(pcm)
    assert pcm_rate == rate and np.array_equal(planar, result.T)
    again = request("inpaint", "--in", str(left), "--region", "0.5-1", "--pcm", str(pcm), port=bridge.address[1])
    assert again.returncode == 2 and "already exists" in again.stderr and read_pcm(pcm)[1] == rate


def test_server_fail_reasons_are_one_line_and_exit_1(bridge, dirs, tmp_path):
    outside = tmp_path / "elsewhere.wav"
    sf.write(str(outside), music(1.0, 44100, 2), 44100)
    run = request("inpaint", "--in", str(outside), "--region", "0.2-0.5", port=bridge.address[1])
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip() == f"msanii-request: failed: path outside the allowed input folders: {outside}"
    clip = dirs[1] / "short.wav"
    sf.write(str(clip), music(1.0, 44100, 2), 44100)
    run = request("inpaint", "--in", str(clip), "--region", "5-6", port=bridge.address[1])
    assert run.returncode == 1 and "failed: region 1 (5.000s-6.000s) ends after the end of the file" in run.stderr
    run = request("generate", "--seconds", "500", port=bridge.address[1])
    assert run.returncode == 1 and re.fullmatch(r"msanii-request: failed: seconds must be <= 190\.\d+, got 500\n",
                                                run.stderr)
    run = request("cancel", "nobody", port=bridge.address[1])
    assert run.returncode == 1 and "no such job" in run.stderr
    run = request("generate", "--seconds", "1", "--bpm", "96", "--beat-guidance", "25", port=bridge.address[1])
    assert run.returncode == 1 and "beat_guidance" in run.stderr and "25" in run.stderr


def test_tempo_and_beat_guidance_are_server_wide_settings_of_every_job(bridge, dirs):
    run = request("generate", "--seconds", "1", "--bpm", "96", "--beat-guidance", "2.5", "--seed", "1",
                  port=bridge.address[1])
    assert run.returncode == 0, run.stderr
    assert bridge.settings.bpm == 96.0 and bridge.settings.bpm_set and bridge.settings.beat_guidance == 2.5


def test_ctrl_c_cancels_the_job_on_the_server(bridge, dirs):
    cmd = [sys.executable, "-m", "bridge.request_cli", "generate", "--seconds", "60", "--steps", "1000",
           "--id", "long", "--port", str(bridge.address[1])]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while bridge.jobs.status()["running"] != "long":
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and stdout == ""
    assert "msanii-request: cancelled (Ctrl-C)" in stderr.splitlines()
    assert bridge.jobs.status()["running"] is None  # the server stopped rendering for nobody
    assert list(dirs[0].iterdir()) == []


def test_no_server_is_said_clearly_and_quickly():
    port = free_udp_port()  # bound by nobody
    t0 = time.monotonic()
    run = request("generate", "--seconds", "1", "--timeout", "1", port=port)
    assert run.returncode == 3 and run.stdout == ""
    assert run.stderr.strip() == (f"msanii-request: no msanii-osc server answered at udp://127.0.0.1:{port} within "
                                  "1 s (registering the reply port); is msanii-osc running on that port?")
    assert time.monotonic() - t0 < 10


def test_status_verb_and_library_events(bridge, dirs):
    run = request("status", port=bridge.address[1])
    assert run.returncode == 0
    fields = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert fields["state"] == "idle" and fields["model"] == "tiny-test" and fields["workers"] == "1"
    events = []
    with MsaniiClient("127.0.0.1", bridge.address[1]) as client:
        done = client.request("/msanii/loop", "lp", [2.0, "s", 9], on_event=lambda k, v: events.append((k, v)))
        assert done.job_id == "lp" and done.seed == 9 and done.path.is_file()
        assert events[0] == ("accepted", 0) and events[-1] == ("progress", 1.0)
        with pytest.raises(RequestFailed, match="no such file"):
            client.request("/msanii/audio2audio", "a2a", [str(dirs[1] / "missing.wav"), 0.5])
        assert client.set("bpm", 90) == [90.0]
    with pytest.raises(ValueError, match="port must be"):
        MsaniiClient("127.0.0.1", 0)


def test_a_server_that_dies_mid_job_is_noticed(tiny_bundle, tmp_path):
    """SIGKILL leaves no fail reply: the client's ping during the silence finds nobody and says so."""
    server = ServerProcess(["--bundle", str(tiny_bundle), "--output-dir", str(tmp_path / "out"), "--workers", "0",
                            "--engine-device", "cpu"])
    try:
        with MsaniiClient("127.0.0.1", server.port, timeout=1.0) as client:
            client.set("steps", 1000)
            t0 = time.monotonic()
            with pytest.raises(NoServer, match="stopped answering .*while job doomed was pending"):
                client.request("/msanii/generate", "doomed", [60.0],
                               on_event=lambda k, v: k == "progress" and server.proc.kill())
            assert time.monotonic() - t0 < 20
    finally:
        server.stop()


def test_deadline_cancels(bridge):
    with MsaniiClient("127.0.0.1", bridge.address[1]) as client:
        client.set("steps", 1000)
        with pytest.raises(Cancelled, match="deadline 0.5"):
            client.request("/msanii/generate", "slow", [60.0], deadline=0.5)
    assert bridge.jobs.status()["running"] is None
