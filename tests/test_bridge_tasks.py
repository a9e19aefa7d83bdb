"""Every region task through OSC on the tiny engine: arguments as Max/Pd send them, outputs in the input's own
rate and format (edits) and server-made names, bad regions answered with the engine's reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from osc_helpers import OscClient


@pytest.fixture(scope="module")
def setup(tiny_bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge_tasks")
    inputs = root / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(7)
    t = np.arange(int(2.0 * 48000)) / 48000
    stereo48 = (0.2 * np.sin(2 * np.pi * 220 * t)[:, None] * [1.0, 0.7] + 0.02 * rng.standard_normal((len(t), 2)))
    sf.write(str(inputs / "session48k.wav"), stereo48, 48000, subtype="PCM_16")
    t = np.arange(int(1.5 * 44100)) / 44100
    sf.write(str(inputs / "mono.flac"), 0.3 * np.sin(2 * np.pi * 330 * t), 44100, subtype="PCM_24")
    engine = Engine.load(tiny_bundle, device="cpu", threads=2)
    bridge = OscBridge(engine, PathPolicy(root / "out", [inputs]), port=0, reply_port=None,
                       settings=RenderSettings(steps=2, gl_iters=2)).start()
    client = OscClient(bridge.address)
    yield bridge, client, inputs, root / "out"
    client.close()
    bridge.close()


def run(client: OscClient, address: str, job: str, *args) -> list:
    client.send(address, job, *args)
    return client.wait_for("/msanii/done", lambda m: m.args[0] == job, timeout=90).args


def check_output(args: list, out: Path, rate: int, subtype: str, frames: int | None, channels: int = 2) -> Path:
    path = Path(args[1])
    assert path.parent == out.resolve() and path.is_file()
    info = sf.info(str(path))
    assert (info.samplerate, info.subtype, info.channels) == (rate, subtype, channels)
    if frames is not None:
        assert info.frames == frames
        assert args[2] == pytest.approx(frames / rate)
    return path


def test_inpaint_keeps_the_input_format_and_untouched_samples(setup):
    bridge, client, inputs, out = setup
    src = inputs / "session48k.wav"
    args = run(client, "/msanii/inpaint", "inp", str(src), 0.5, 1.0, 11)
    assert args[3] == 11
    path = check_output(args, out, 48000, "PCM_16", 96000)
    before, _ = sf.read(str(src), dtype="int16")
    after, _ = sf.read(str(path), dtype="int16")
    np.testing.assert_array_equal(after[: int(0.3 * 48000)], before[: int(0.3 * 48000)])
    np.testing.assert_array_equal(after[int(1.2 * 48000):], before[int(1.2 * 48000):])
    assert not np.array_equal(after[int(0.6 * 48000):int(0.9 * 48000)], before[int(0.6 * 48000):int(0.9 * 48000)])


def test_audio2audio_outpaint_interpolate_loop(setup):
    bridge, client, inputs, out = setup
    src, mono = inputs / "session48k.wav", inputs / "mono.flac"
    check_output(run(client, "/msanii/audio2audio", "a2a", str(src), 0.5, 3), out, 48000, "PCM_16", 96000)
    outp = run(client, "/msanii/outpaint", "outp", str(mono), 0.0, 1.0)
    check_output(outp, out, 44100, "PCM_24", int(1.5 * 44100) + 44100, channels=1)
    check_output(run(client, "/msanii/interpolate", "mix", str(src), str(mono), 0.25), out, 48000, "PCM_16", None)
    client.send("/msanii/set", "bpm", 120.0)
    client.send("/msanii/set", "time_signature", 4, 4)
    loop = run(client, "/msanii/loop", "loop", 1.0, "bars", 9)
    path = check_output(loop, out, 44100, "PCM_24", 2 * 44100)  # one 4/4 bar at 120 BPM = 2 s
    assert path.suffix == ".wav"


def test_bad_region_is_answered_with_the_engines_reason(setup):
    bridge, client, inputs, out = setup
    before = set(out.iterdir())
    client.send("/msanii/inpaint", "late", str(inputs / "session48k.wav"), 5.0, 6.0)
    reason = client.wait_for("/msanii/fail", lambda m: m.args[0] == "late", timeout=60).args[1]
    assert reason.startswith("region 1 (5.000s-6.000s) ends after the end of the file"), reason
    client.send("/msanii/inpaint", "rev", str(inputs / "session48k.wav"), 1.0, 0.5)
    assert "empty or reversed" in client.wait_for("/msanii/fail", lambda m: m.args[0] == "rev").args[1]
    client.send("/msanii/audio2audio", "zero", str(inputs / "session48k.wav"), 0.0)
    assert "strength must be > 0" in client.wait_for("/msanii/fail", lambda m: m.args[0] == "zero").args[1]
    assert set(out.iterdir()) == before
