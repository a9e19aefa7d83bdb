"""Audition through the real chain: msanii-osc -> sounddevice -> PortAudio -> ALSA `file` PCM (defined in an
ALSA config made here); the raw file must hold exactly the samples of the clip. A missing device is a clear
start-up error and the server keeps serving."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from osc_helpers import OscClient, ServerProcess

ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
pytestmark = pytest.mark.skipif(not ALSA_CONF.exists(), reason="ALSA configuration not installed")


def alsa_env(tmp_path: Path) -> tuple[dict, Path]:
    raw = tmp_path / "played.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(f'pcm.msanii_test {{\n  type file\n  slave.pcm "null"\n  file "{raw}"\n  format "raw"\n}}\n')
    return {"ALSA_CONFIG_PATH": f"{ALSA_CONF}:{conf}"}, raw


def played_frames(raw: Path, channels: int) -> np.ndarray:
    """The float32 frames PortAudio wrote, without the silence it pads around a stream."""
    frames = np.fromfile(raw, dtype="<f4").reshape(-1, channels)
    sounding = np.flatnonzero(np.abs(frames).sum(axis=1))
    return frames[sounding[0]:sounding[-1] + 1] if len(sounding) else frames[:0]


def trim(frames: np.ndarray) -> np.ndarray:
    sounding = np.flatnonzero(np.abs(frames).sum(axis=1))
    return frames[sounding[0]:sounding[-1] + 1]


def test_audition_writes_exactly_the_played_samples(tiny_bundle, tmp_path):
    env, raw = alsa_env(tmp_path)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(22050) / 44100)[:, None] * [1.0, -0.5]
            + 0.01 * rng.standard_normal((22050, 2))).astype(np.float32)
    sf.write(str(inputs / "tone.wav"), tone, 44100, subtype="FLOAT")
    server = ServerProcess(["--bundle", str(tiny_bundle), "--reply-port", "0", "--output-dir", str(tmp_path / "out"),
                            "--allow-input", str(inputs), "--audition", "--device", "msanii_test",
                            "--engine-device", "cpu"], env=env)
    client = OscClient(("127.0.0.1", server.port))
    try:
        assert "audition unavailable" not in server.output
        client.send("/msanii/set", "steps", 3)
        client.send("/msanii/set", "gl_iters", 3)
        # --audition: the finished clip plays by itself.
        client.send("/msanii/generate", "hear-me", 1.0, 5)
        done = client.wait_for("/msanii/done", timeout=60)
        clip = Path(done.args[1])
        playing = client.wait_for("/msanii/playing", timeout=10)
        assert playing.args == [str(clip), pytest.approx(1.0)]
        client.wait_for("/msanii/stopped", lambda m: m.args == [str(clip)], timeout=10)
        expected, _ = sf.read(str(clip), dtype="float32")
        np.testing.assert_array_equal(played_frames(raw, 2), trim(expected))

        # /msanii/play of an allowed input, then /msanii/stop (nothing left playing: answered all the same).
        client.received.clear()
        client.send("/msanii/play", str(inputs / "tone.wav"))
        client.wait_for("/msanii/stopped", lambda m: m.args == [str(inputs / "tone.wav")], timeout=10)
        np.testing.assert_array_equal(played_frames(raw, 2), trim(tone))
        client.send("/msanii/stop")
        assert client.wait_for("/msanii/stopped", lambda m: m.args == [""], timeout=5)
        client.send("/msanii/play", "/etc/hostname")
        assert "outside the allowed input folders" in client.wait_for("/msanii/fail", timeout=5).args[1]
        rc = server.signal(signal.SIGINT)
        assert rc == 0 and "stopped" in server.output
    finally:
        client.close()
        server.stop()


def test_missing_device_is_a_clear_error_and_the_server_still_works(tiny_bundle, tmp_path):
    env, _ = alsa_env(tmp_path)
    server = ServerProcess(["--bundle", str(tiny_bundle), "--reply-port", "0", "--output-dir", str(tmp_path / "out"),
                            "--audition", "--device", "no-such-card", "--engine-device", "cpu"], env=env)
    client = OscClient(("127.0.0.1", server.port))
    try:
        assert "ERROR: audition unavailable: output device 'no-such-card' not available" in server.output
        assert "'msanii_test'" in server.output  # the error lists the outputs that do exist
        client.send("/msanii/ping")
        client.wait_for("/msanii/pong", timeout=5)
        client.send("/msanii/set", "steps", 2)
        client.send("/msanii/generate", "still-works", 0.3)
        assert Path(client.wait_for("/msanii/done", timeout=60).args[1]).is_file()
        client.send("/msanii/play", client.of("/msanii/done")[0].args[1])
        assert client.wait_for("/msanii/fail", timeout=5).args[1].startswith(
            "audition unavailable: output device 'no-such-card'")
    finally:
        client.close()
        server.stop()
