"""OSC bridge in-process with the real tiny engine and real UDP clients: replies, progress, ping during a
render, busy queue, cancel, concurrent clients, hostile and malformed input, registration, settings."""

from __future__ import annotations

import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from osc_helpers import OscClient, build

FAST = RenderSettings(steps=3, gl_iters=3)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine.load(tiny_bundle, device="cpu", threads=2)


@pytest.fixture()
def dirs(tmp_path):
    out, inputs, secret = tmp_path / "out", tmp_path / "inputs", tmp_path / "secret"
    for d in (out, inputs, secret):
        d.mkdir()
    return out, inputs, secret


@pytest.fixture()
def bridge(engine, dirs):
    out, inputs, _ = dirs
    server = OscBridge(engine, PathPolicy(out, [inputs]), port=0, reply_port=None, max_pending=3,
                       settings=FAST).start()
    yield server
    server.close()


@pytest.fixture()
def client(bridge):
    c = OscClient(bridge.address)
    yield c
    c.close()


def leftovers(folder: Path) -> list[str]:
    """Anything in the output folder that is not a finished clip (temp files, partial writes)."""
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or "tmp" in p.name]


def test_generate_accepted_progress_done_and_ping_during_render(bridge, client, dirs):
    out = dirs[0]
    client.send("/msanii/set", "steps", 20)
    client.wait_for("/msanii/set", lambda m: m.args == ["steps", 20])
    t0 = client.send("/msanii/generate", "take-1", 5.0, 1234)
    accepted = client.wait_for("/msanii/accepted")
    assert accepted.args == ["take-1", 0]
    client.wait_for("/msanii/progress", lambda m: m.args[1] > 0)
    # The render is running on the worker: the server thread must still answer at once.
    sent = client.send("/msanii/ping", "during")
    pong = client.wait_for("/msanii/pong", lambda m: m.args == ["during"], timeout=5)
    assert pong.at - sent < 0.25, f"pong took {pong.at - sent:.3f} s during a render"
    assert bridge.jobs.status()["running"] == "take-1"
    done = client.wait_for("/msanii/done", timeout=60)
    latency = done.at - t0
    job_id, path, seconds, seed, bpm = done.args
    assert job_id == "take-1" and seed == 1234 and seconds == pytest.approx(5.0)
    assert bpm == 0.0  # the tiny bundle follows no tempo
    path = Path(path)
    assert path.is_absolute() and path.parent == out.resolve()
    assert path.name.startswith("take-1-") and path.suffix == ".wav"
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, 5 * 44100)
    audio, _ = sf.read(str(path), dtype="float32")
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    fractions = [m.args[1] for m in client.of("/msanii/progress", "take-1")]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    times = [m.at for m in client.of("/msanii/progress", "take-1")]
    assert len(times) <= 20 * (times[-1] - times[0]) + 2, "progress exceeds 20 Hz"
    assert leftovers(out) == []
    print(f"\nround trip request->done for a 5 s clip (tiny, 20 steps, 3 GL iters): {latency:.2f} s; "
          f"{len(fractions)} progress replies")


def test_busy_queue_and_cancel_leave_no_partial_file(bridge, client, dirs):
    out = dirs[0]
    client.send("/msanii/set", "steps", 200)
    client.wait_for("/msanii/set")
    client.send("/msanii/generate", "long", 10.0)
    client.wait_for("/msanii/progress", lambda m: m.args[0] == "long" and m.args[1] > 0)
    for job in ("q1", "q2", "q3", "q4"):
        client.send("/msanii/generate", job, 1.0)
    for position, job in enumerate(("q1", "q2", "q3"), start=1):
        assert client.wait_for("/msanii/accepted", lambda m, j=job: m.args[0] == j).args == [job, position]
    assert client.wait_for("/msanii/fail", lambda m: m.args[0] == "q4").args == ["q4", "busy: queue full"]
    client.send("/msanii/generate", "q1", 1.0)
    assert "duplicate id" in client.wait_for("/msanii/fail", lambda m: m.args[0] == "q1").args[1]
    client.send("/msanii/status")
    status = client.wait_for("/msanii/status").args
    assert status[:4] == ["busy", 4, "tiny-test", "cpu"]
    # Cancel the queued ones, then the running one: each reports, no file appears.
    for job in ("q2", "q3", "q1", "long"):
        sent = client.send("/msanii/cancel", job)
        client.wait_for("/msanii/fail", lambda m, j=job: m.args == [j, "cancelled"], timeout=10)
    cancel_latency = client.of("/msanii/fail", "long")[0].at - sent
    assert cancel_latency < 2.0, f"cancel took {cancel_latency:.2f} s"
    time.sleep(0.2)
    assert list(out.iterdir()) == []
    client.send("/msanii/cancel", "long")
    assert "no such job" in client.wait_for("/msanii/fail", lambda m: m.args[0] == "long" and
                                            m.args[1] != "cancelled").args[1]
    assert bridge.jobs.status()["state"] == "idle"


def test_concurrent_clients_get_their_own_replies(bridge, dirs):
    clients = [OscClient(bridge.address) for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            c.send("/msanii/generate", f"client{i}", 0.5, i)
        for i, c in enumerate(clients):
            done = c.wait_for("/msanii/done", timeout=60)
            assert done.args[0] == f"client{i}" and Path(done.args[1]).is_file()
        for i, c in enumerate(clients):
            ids = {m.args[0] for m in c.received if m.address != "/msanii/pong"}
            assert ids == {f"client{i}"}, ids
    finally:
        for c in clients:
            c.close()


def test_register_sends_replies_to_the_registered_port(bridge):
    sender = OscClient(bridge.address)
    listener = OscClient(bridge.address)
    try:
        sender.send("/msanii/register", listener.port)
        assert listener.wait_for("/msanii/registered").args == ["127.0.0.1", listener.port]
        sender.send("/msanii/ping", 7)
        assert listener.wait_for("/msanii/pong").args == [7]
        sender.send("/msanii/register", "10.1.2.3", listener.port)
        reason = listener.wait_for("/msanii/fail").args
        assert reason == ["/msanii/register", "reply host must be the sender's own address"]
        assert sender.of("/msanii/pong") == []
    finally:
        sender.close()
        listener.close()


@pytest.mark.parametrize("address,args,reason", [
    ("/msanii/nope", ["x"], "unknown address /msanii/nope"),
    ("/other/thing", [], "unknown address /other/thing"),
    ("/msanii/generate", [], "expected /msanii/generate"),
    ("/msanii/generate", ["g"], "expected 2..3 arguments"),
    ("/msanii/generate", ["g", "ten"], "seconds must be a number, got string 'ten'"),
    ("/msanii/generate", ["g", -1.0], "seconds must be > 0"),
    ("/msanii/generate", ["g", 500.0], "seconds must be <= 190.1946"),
    ("/msanii/generate", ["g", 1.0, 2.5], "seed must be a whole number"),
    ("/msanii/generate", ["g", 1.0, 1, 2], "expected 2..3 arguments"),
    ("/msanii/generate", ["g", float("nan")], "seconds must be finite"),
    ("/msanii/generate", [b"\x00\x01", 1.0], "job id must be a string or number, got blob"),
    ("/msanii/generate", ["x" * 65, 1.0], "job id must be 1..64 characters"),
    ("/msanii/generate", ["g", True], "seconds must be a number, got bool"),
    ("/msanii/set", ["steps", 0], "steps must be in 1..1000"),
    ("/msanii/set", ["sampler", "euler"], "sampler must be one of ddim, dpmpp"),
    ("/msanii/set", ["colour", 1], "unknown setting 'colour'"),
    ("/msanii/set", ["output_dir", "../escape"], "output_dir must be inside the output root"),
    ("/msanii/cancel", [], "expected 1 arguments"),
    ("/msanii/register", ["localhost", 70000], "port must be in 1..65535"),
    ("/msanii/stop", [], "audition disabled"),
])
def test_bad_requests_fail_with_a_reason(bridge, client, address, args, reason):
    expected_id = args[0] if args and isinstance(args[0], str) and len(args[0]) <= 64 and address.endswith(
        ("generate", "cancel")) else address
    client.send(address, *args)
    fail = client.wait_for("/msanii/fail", timeout=5)
    assert fail.args[0] == expected_id
    assert reason in fail.args[1]
    unknown = reason.startswith("unknown address")  # docs/osc.md: counted apart from refused requests
    assert (bridge.counts.unknown, bridge.counts.rejected) == ((1, 0) if unknown else (0, 1))


def test_engine_error_is_reported_and_worker_continues(bridge, client, dirs):
    client.send("/msanii/generate", "tiny", 1e-6)
    assert "shorter than one sample" in client.wait_for("/msanii/fail", timeout=30).args[1]
    client.send("/msanii/generate", "after", 0.3)
    assert client.wait_for("/msanii/done", timeout=60).args[0] == "after"


def test_hostile_paths_are_refused(bridge, client, dirs):
    out, inputs, secret = dirs
    (secret / "private.wav").write_bytes(b"RIFF")
    (inputs / "escape.wav").symlink_to(secret / "private.wav")
    (inputs / "dirlink").symlink_to(secret, target_is_directory=True)
    hostile = {
        str(inputs / ".." / "secret" / "private.wav"): "outside the allowed input folders",
        str(inputs / "escape.wav"): "outside the allowed input folders",
        str(inputs / "dirlink" / "private.wav"): "outside the allowed input folders",
        "/etc/passwd": "outside the allowed input folders",
        "inputs/escape.wav": "must be absolute",
        str(inputs / "missing.wav"): "no such file",
        str(inputs): "not a regular file",
    }
    for path, reason in hostile.items():
        client.received.clear()
        client.send("/msanii/play", path)
        fail = client.wait_for("/msanii/fail", timeout=5)
        assert reason in fail.args[1], (path, fail.args)
    # Server-made output names: a hostile id cannot steer the file out of the output root.
    client.send("/msanii/generate", "../../secret/x", 0.3)
    done = client.wait_for("/msanii/done", timeout=60)
    written = Path(done.args[1])
    assert written.parent == out.resolve() and written.name.startswith("secret_x-")
    assert sorted(p.name for p in secret.iterdir()) == ["private.wav"]


def _fuzz_datagrams(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """(kind, datagram): random bytes, truncated/corrupted OSC, wrong type tags, oversized, unknown addresses,
    bad arguments and broken bundles."""
    valid = [build("/msanii/generate", "f", 1.0), build("/msanii/ping"), build("/msanii/status"),
             build("/msanii/inpaint", "f", "/x.wav", 1.0, 2.0)]
    out = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            out.append(("malformed", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))))
        elif kind == 1:  # valid message cut short (misaligned)
            msg = rng.choice(valid)
            cut = rng.randint(1, len(msg) - 1)
            cut -= (cut % 4 == 0)
            out.append(("malformed", msg[:max(cut, 1)]))
        elif kind == 2:  # a type tag the parser does not know, with a misaligned payload
            out.append(("malformed", b"/msanii/ping\x00\x00\x00\x00,Q\x00\x00" + b"\x01\x02\x03"))
        elif kind == 3:
            out.append(("oversized", b"/msanii/ping\x00\x00\x00\x00,s\x00\x00" + b"A" * rng.randint(16400, 20000)))
        elif kind == 4:
            addr = "/" + "".join(rng.choice("abcxyz/") for _ in range(rng.randint(1, 30)))
            out.append(("unknown", build(addr, rng.random())))
        elif kind == 5:  # right address, wrong types
            out.append(("rejected", build("/msanii/generate", rng.random(), "ten")))
        elif kind == 6:  # bundle header followed by garbage
            out.append(("malformed", b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", 9999) + b"xx"))
        else:  # nul-less address: not OSC at all
            out.append(("malformed", b"/msanii/ping" + bytes([rng.randint(1, 255)])))
    return out


def test_fuzz_10000_datagrams_then_ping_still_answered(bridge, client):
    rng = random.Random(0xF022)
    datagrams = _fuzz_datagrams(rng, 10_000)
    expected = {"malformed": 0, "oversized": 0, "rejected": 0, "unknown": 0}
    t0 = time.monotonic()
    batch = 50  # keeps each burst inside the kernel's default socket buffers, so nothing is lost before the server
    for start in range(0, len(datagrams), batch):
        for kind, data in datagrams[start:start + batch]:
            client.send_raw(data)
            expected[kind] += 1
        # Pace on the server: a pong means every earlier datagram was handled (the server is serial).
        token = f"sync{start}"
        client.send("/msanii/ping", token)
        client.wait_for("/msanii/pong", lambda m, t=token: m.args == [t], timeout=20)
    elapsed = time.monotonic() - t0
    sent = client.send("/msanii/ping", "after")
    pong = client.wait_for("/msanii/pong", lambda m: m.args == ["after"], timeout=5)
    client.send("/msanii/status")
    status = client.wait_for("/msanii/status", timeout=5).args
    state, queue_length, name, device, packets, malformed, oversized, rejected = status[:8]
    unknown = status[11]
    assert state == "idle" and queue_length == 0
    pings = 10_000 // batch + 2  # sync pings, the last ping and the status request
    assert packets == 10_000 + pings
    assert (malformed, oversized, rejected, unknown) == (expected["malformed"], expected["oversized"],
                                                         expected["rejected"], expected["unknown"])
    assert len(client.of("/msanii/fail")) == expected["rejected"] + expected["unknown"]
    print(f"\nfuzz: 10000 datagrams in {elapsed:.2f} s: malformed {malformed}, oversized {oversized}, "
          f"rejected {rejected} and unknown {unknown}, each with a fail reply; "
          f"ping after fuzz answered in {(pong.at - sent) * 1000:.1f} ms")


def test_settings_snapshot_format_and_output_dir(bridge, client, dirs):
    out = dirs[0]
    client.send("/msanii/set", "format", "flac")
    client.send("/msanii/set", "bit_depth", 16)
    client.send("/msanii/set", "output_dir", "session 1/takes")
    assert client.wait_for("/msanii/set", lambda m: m.args[0] == "output_dir").args[1] == str(
        (out / "session 1" / "takes").resolve())
    client.send("/msanii/generate", 3.0, 0.4)  # Pd sends numeric ids as floats
    done = client.wait_for("/msanii/done", timeout=60)
    path = Path(done.args[1])
    assert done.args[0] == "3" and path.parent == (out / "session 1" / "takes").resolve()
    info = sf.info(str(path))
    assert info.format == "FLAC" and info.subtype == "PCM_16" and info.frames == round(0.4 * 44100)
    assert os.access(path, os.R_OK)


def test_no_feedback_loops(bridge, client):
    """Replies never go to the server's own port, and another server's replies are not answered."""
    client.send("/msanii/register", bridge.address[1])
    assert client.wait_for("/msanii/fail", timeout=5).args == [
        "/msanii/register", "reply port must not be the server's own port"]
    for address in ("/msanii/done", "/msanii/fail", "/msanii/pong", "/msanii/accepted", "/msanii/progress"):
        client.send(address, "x", "y")
    client.send("/msanii/ping", "after")
    client.wait_for("/msanii/pong", lambda m: m.args == ["after"], timeout=5)
    assert len(client.of("/msanii/fail")) == 1  # only the refused registration was answered
    assert (bridge.counts.rejected, bridge.counts.ignored) == (1, 5)
