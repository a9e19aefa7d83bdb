"""Hostile audio through the OSC bridge and `msanii-render`: non-finite samples are refused by every task with
the first bad sample's time, a render that comes out non-finite is never written or reported done, and every
task's input and rendered length is bounded (checked before any work, the reason naming the limit)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from engine.cli import main as render_main
from osc_helpers import OscClient
from tests.hostile_audio import all_finite, digest, long_wav, loud_float_wav, non_finite_wav
from tests.task_audio import write_clip

FAST = RenderSettings(steps=2, gl_iters=2)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    inputs = tmp_path_factory.mktemp("hostile_inputs")
    nan_path, bad_s = non_finite_wav(inputs / "nan.wav")
    double_path, double_bad_s = non_finite_wav(inputs / "inf-double.wav", first_bad_s=0.6, subtype="DOUBLE")
    return {"inputs": inputs, "nan": nan_path, "nan_s": bad_s, "double": double_path, "double_s": double_bad_s,
            "good": write_clip(inputs / "good.wav", 1.0, 44_100, 2), "loud": loud_float_wav(inputs / "loud.wav"),
            "hour": long_wav(inputs / "hour.wav", 3600.0), "ten-min": long_wav(inputs / "ten-min.wav", 601.0),
            "six-min": long_wav(inputs / "six-min.wav", 360.0)}


@pytest.fixture()
def served(engine, files, tmp_path):
    """A bridge with the server's default limits, and a client."""
    out = tmp_path / "out"
    bridge = OscBridge(engine, PathPolicy(out, [files["inputs"]]), port=0, reply_port=None, settings=FAST).start()
    client = OscClient(bridge.address)
    yield bridge, client, out
    client.close()
    bridge.close()


def outcome(client: OscClient, job: str, timeout: float = 90.0) -> tuple[str, list]:
    """("done" | "fail", args) for `job`, whichever comes first."""
    found = client.outcome(job, timeout)
    return found.address.rsplit("/", 1)[1], found.args


def test_non_finite_input_is_refused_by_every_task_naming_the_first_bad_sample(served, files):
    bridge, client, out = served
    nan, good, double = str(files["nan"]), str(files["good"]), str(files["double"])
    requests = {
        "a2a": ("/msanii/audio2audio", nan, 0.5),
        "inpaint-elsewhere": ("/msanii/inpaint", nan, 0.6, 0.8),  # the region misses the NaN: it would be copied
        "inpaint-over": ("/msanii/inpaint", nan, 0.2, 0.3),
        "outpaint": ("/msanii/outpaint", nan, 0.0, 0.5),
        "interp-b": ("/msanii/interpolate", good, nan, 0.5),
        "interp-a": ("/msanii/interpolate", nan, good, 0.5),
        "double": ("/msanii/audio2audio", double, 0.5),
    }
    for job, (address, *args) in requests.items():
        client.send(address, job, *args)
    for job in requests:
        kind, args = outcome(client, job)
        assert kind == "fail", (job, args)
        reason = args[1]
        bad_s = files["double_s"] if job == "double" else files["nan_s"]
        assert "non-finite" in reason and f"{bad_s:.3f} s" in reason, (job, reason)
    assert list(out.rglob("*")) == []


def test_a_render_that_comes_out_non_finite_is_never_written_or_done(served, files):
    """|x| ~ 1e37 is finite, but its STFT overflows float32: whatever the cause, the output is checked."""
    bridge, client, out = served
    loud = str(files["loud"])
    requests = {"a2a": ("/msanii/audio2audio", loud, 0.5), "inp": ("/msanii/inpaint", loud, 0.3, 0.5),
                "outp": ("/msanii/outpaint", loud, 0.0, 0.4), "mix": ("/msanii/interpolate", loud, loud, 0.5)}
    for job, (address, *args) in requests.items():
        client.send(address, job, *args)
    for job in requests:
        kind, args = outcome(client, job)
        if kind == "done":
            assert all_finite(Path(args[1])), (job, args)
        else:
            assert "non-finite" in args[1] or "level" in args[1], (job, args)
    for path in out.rglob("*.wav"):
        assert all_finite(path), path


def test_default_limits_refuse_long_work_before_it_starts(served, files):
    bridge, client, out = served
    long_requests = {
        "hour-a2a": ("/msanii/audio2audio", str(files["hour"]), 0.5, "--max-input-seconds"),
        "hour-inpaint": ("/msanii/inpaint", str(files["hour"]), 1.0, 2.0, "--max-input-seconds"),
        "hour-mix": ("/msanii/interpolate", str(files["good"]), str(files["hour"]), 0.5, "--max-input-seconds"),
        "ten-min": ("/msanii/outpaint", str(files["ten-min"]), 0.0, 1.0, "--max-input-seconds"),
        "six-min-a2a": ("/msanii/audio2audio", str(files["six-min"]), 0.5, "--max-render-seconds"),
        "outpaint-500": ("/msanii/outpaint", str(files["good"]), 0.0, 500.0, "--max-render-seconds"),
        "outpaint-both": ("/msanii/outpaint", str(files["good"]), 200.0, 200.0, "--max-render-seconds"),
    }
    for job, (address, *args, limit) in long_requests.items():
        sent = client.send(address, job, *args)
        kind, reply = outcome(client, job, timeout=10)
        assert kind == "fail" and limit in reply[1], (job, reply)
        assert client.of("/msanii/fail", job)[0].at - sent < 1.0, f"{job}: refused only after work started"
        assert client.of("/msanii/accepted", job) == [], f"{job} was accepted"
    assert list(out.rglob("*")) == []
    assert bridge.jobs.status()["state"] == "idle"


def test_server_limits_are_options(engine, files, tmp_path):
    from engine.limits import Limits
    out = tmp_path / "out"
    limits = Limits(max_input_seconds=5.0, max_render_seconds=0.5)
    with OscBridge(engine, PathPolicy(out, [files["inputs"]]), port=0, reply_port=None, settings=FAST,
                   limits=limits) as bridge:
        client = OscClient(bridge.address)
        try:
            client.send("/msanii/audio2audio", "a2a", str(files["good"]), 0.5)
            assert "at most 0.5 s" in outcome(client, "a2a")[1][1]
            client.send("/msanii/inpaint", "inp", str(files["good"]), 0.1, 0.4, 0.5, 0.8)
            assert "--max-render-seconds" in outcome(client, "inp")[1][1]
            client.send("/msanii/inpaint", "ok", str(files["good"]), 0.1, 0.4)
            kind, args = outcome(client, "ok")
            assert kind == "done" and all_finite(Path(args[1]))
        finally:
            client.close()


def test_interpolate_reads_only_the_span_it_renders(engine, files):
    """A 6-minute B blended with a 1 s A: only A's length of B is read (memory does not grow with B)."""
    import tracemalloc
    from engine.tasks.interpolate import interpolate
    tracemalloc.start()
    try:
        result = interpolate(engine, files["good"], files["six-min"], 0.5, steps=2, gl_iters=1, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whole_b = 360 * 8000 * 2  # bytes of B's int16 samples alone
    assert result.audio.shape[-1] == 44_100 and peak < whole_b, f"peak {peak / 1e6:.1f} MB"


# ---- msanii-render ---------------------------------------------------------------------------------------------

def _cli_cases(files: dict, bundle: Path, out: Path) -> dict[str, list[str]]:
    nan = str(files["nan"])
    common = ["--bundle", str(bundle), "--steps", "2", "--gl-iters", "1", "--quiet", "--out", str(out)]
    return {"inpaint": ["inpaint", "--in", nan, "--region", "0.6-0.8", *common],
            "outpaint": ["outpaint", "--in", nan, "--right", "0.5", *common],
            "interpolate": ["interpolate", "--a", str(files["good"]), "--b", nan, *common],
            "loop": ["loop", "--in", nan, "--length", "0.5", *common]}


def test_msanii_render_refuses_non_finite_audio_with_one_line(tiny_bundle, files, tmp_path):
    before = digest(files["nan"])
    out = tmp_path / "a2a.wav"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "audio2audio", "--bundle", str(tiny_bundle), "--in",
                           str(files["nan"]), "--strength", "0.5", "--steps", "2", "--gl-iters", "1", "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("msanii-render: error:"), proc.stderr
    assert "non-finite" in lines[0] and f"{files['nan_s']:.3f} s" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and digest(files["nan"]) == before


@pytest.mark.parametrize("task", ["inpaint", "outpaint", "interpolate", "loop"])
def test_msanii_render_every_task_refuses_non_finite_audio(tiny_bundle, files, tmp_path, capsys, task):
    before = digest(files["nan"])
    out = tmp_path / f"{task}.wav"
    assert render_main(_cli_cases(files, tiny_bundle, out)[task]) == 2
    err = capsys.readouterr().err
    assert "msanii-render: error:" in err and "non-finite" in err and f"{files['nan_s']:.3f} s" in err, err
    assert not out.exists() and digest(files["nan"]) == before


def test_msanii_render_limits(tiny_bundle, files, tmp_path, capsys):
    out = tmp_path / "x.wav"
    base = ["--bundle", str(tiny_bundle), "--steps", "1", "--gl-iters", "1", "--quiet", "--out", str(out)]
    assert render_main(["audio2audio", "--in", str(files["hour"]), "--strength", "0.5", *base]) == 2
    assert "--max-input-seconds" in capsys.readouterr().err
    assert render_main(["outpaint", "--in", str(files["good"]), "--right", "500", *base]) == 2
    assert "--max-render-seconds" in capsys.readouterr().err
    assert render_main(["outpaint", "--in", str(files["good"]), "--right", "1", "--max-render-seconds", "0.5",
                        *base]) == 2
    assert "at most 0.5 s" in capsys.readouterr().err
    assert not out.exists()
