"""The hostile-input campaign as one test over real UDP against the real tiny engine: malformed packets, hostile
paths, hostile files and hostile arguments for every verb, tallied. It must end with 0 crashes (server thread
alive, ping answered after every phase, no internal error, nothing logged at ERROR), 0 files written or changed
outside the output root, 0 non-finite outputs and 0 unbounded jobs (every accepted job ends, within the limits)."""
from __future__ import annotations

import logging
import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from engine.limits import Limits
from osc_helpers import OscClient, build
from tests.hostile_audio import all_finite, broken_files, long_wav, loud_float_wav, non_finite_wav
from tests.task_audio import write_clip

LIMITS = Limits(max_input_seconds=60.0, max_render_seconds=2.0)
JOB_VERBS = ("/msanii/audio2audio", "/msanii/inpaint", "/msanii/outpaint", "/msanii/interpolate",
             "/msanii/generate", "/msanii/loop")


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `root` except under `skip`."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")
            if skip not in p.parents and p != skip}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


def _world(root: Path) -> dict:
    inputs, secret = root / "inputs", root / "secret"
    inputs.mkdir()
    secret.mkdir()
    sf.write(str(secret / "private.wav"), np.zeros((4410, 2)), 44_100)
    (inputs / "escape.wav").symlink_to(secret / "private.wav")
    (inputs / "dirlink").symlink_to(secret, target_is_directory=True)
    (inputs / "loop.wav").symlink_to(inputs / "loop.wav")
    os.mkfifo(inputs / "fifo.wav")
    unreadable = write_clip(inputs / "unreadable.wav", 0.5, 44_100, 2)
    os.chmod(unreadable, 0)
    files = dict(broken_files(inputs))
    files["nan.wav"] = non_finite_wav(inputs / "nan.wav")[0]
    files["inf-double.wav"] = non_finite_wav(inputs / "inf-double.wav", subtype="DOUBLE")[0]
    files["loud.wav"] = loud_float_wav(inputs / "loud.wav")
    files["long.wav"] = long_wav(inputs / "long.wav", 61.0)
    files["good.wav"] = write_clip(inputs / "good.wav", 1.0, 44_100, 2)
    files["mono48.flac"] = write_clip(inputs / "mono48.flac", 0.8, 48_000, 1, "PCM_16")
    files["ogg.ogg"] = write_clip(inputs / "ogg.ogg", 0.8, 44_100, 2, "VORBIS")
    return {"inputs": inputs, "secret": secret, "files": files}


def hostile_paths(inputs: Path, secret: Path) -> list[str]:
    return [str(secret / "private.wav"), str(secret / "none.wav"), str(inputs / ".." / "secret" / "private.wav"),
            str(inputs / "escape.wav"), str(inputs / "dirlink" / "private.wav"), str(inputs / "loop.wav"),
            str(inputs / "fifo.wav"), str(inputs / "unreadable.wav"), str(inputs), str(inputs / "missing.wav"),
            "/etc/passwd", "/etc/shadow", "/dev/zero", "/dev/urandom", "/proc/self/mem", "/proc/self/environ",
            "/", "relative.wav", "~/x.wav", "", " ", str(inputs) + "/" + "x" * 5000, str(inputs / ("a" * 300)),
            str(inputs / "good.wav") + "\x00.txt", str(inputs / "good.wav/"), str(inputs / "ü€😀.wav"),
            "//" + str(inputs / "good.wav"), str(inputs / "./good.wav/../../secret/private.wav"),
            "\\\\server\\share\\a.wav", "C:/Users/a.wav", "file:///etc/passwd"]


NUMBERS = [float("nan"), float("inf"), float("-inf"), 0, -0.0, 1e-45, 1e38, -1e38, 2**31 - 1, -2**31, 0.5, 3.0,
           190.2, 1e9, True]
WORDS = ["", "x" * 4097, "\x01\x02", "ten", "😀" * 100, "bars", "beats"]


def hostile_arguments(good: str) -> list[tuple[str, list]]:
    """(address, args) for every verb: counts from 0 up, each argument position through odd values."""
    rng = random.Random(18)
    shapes = {"/msanii/generate": ["id", 1.0, 5], "/msanii/audio2audio": ["id", good, 0.5, 5],
              "/msanii/inpaint": ["id", good, 0.1, 0.3, 5], "/msanii/outpaint": ["id", good, 0.0, 0.5, 5],
              "/msanii/interpolate": ["id", good, good, 0.5, 0.5, 5], "/msanii/loop": ["id", 1.0, "s", 5],
              "/msanii/cancel": ["id"], "/msanii/set": ["steps", 1], "/msanii/register": ["127.0.0.1", 9],
              "/msanii/status": [], "/msanii/ping": [1], "/msanii/play": [good], "/msanii/stop": []}
    out = []
    for address, shape in shapes.items():
        for n in range(len(shape) + 2):
            out.append((address, (shape + [1.0, 1.0])[:n]))
        for i in range(len(shape)):
            for value in NUMBERS + WORDS + [b"\x00\x01\x02"]:
                args = list(shape)
                args[i] = value
                out.append((address, args))
    out.append(("/msanii/inpaint", ["id", good] + [0.1 * k for k in range(132)]))  # 66 regions
    out.append(("/msanii/inpaint", ["id", good, 0.1, 0.5, 0.3, 0.6]))  # overlapping
    out.append(("/msanii/outpaint", ["id", good, 500.0, 0.0]))
    out.append(("/msanii/loop", ["id", 1000.0, "bars"]))
    for key in ("steps", "sampler", "gl_iters", "bpm", "time_signature", "format", "bit_depth", "output_dir",
                "progress_hz", "nope"):
        for value in [*NUMBERS, *WORDS, "../../x", "/etc", "flac"]:
            out.append(("/msanii/set", [key, value]))
    rng.shuffle(out)
    return [(a, args) for a, args in out if not (a == "/msanii/set" and args[:1] == ["progress_hz"])]


def hostile_packets(rng: random.Random, n: int) -> list[bytes]:
    valid = [build("/msanii/ping", "x"), build("/msanii/generate", "f", 1.0), build("/msanii/status")]
    out = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))))
        elif kind == 1:
            msg = rng.choice(valid)
            out.append(msg[:rng.randint(1, len(msg) - 1)])
        elif kind == 2:
            tag = rng.choice("cSIhdtmrTFN[]bX")
            out.append(b"/msanii/ping\x00\x00\x00\x00," + tag.encode() + b"\x00\x00" + b"\x00" * rng.randint(0, 9))
        elif kind == 3:
            out.append(build("/msanii/ping", "A" * rng.choice([16300, 60000])))
        elif kind == 4:  # bundles nested 1..6 deep
            inner = rng.choice(valid)
            for _ in range(rng.randint(1, 6)):
                inner = b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", len(inner)) + inner
            out.append(inner)
        elif kind == 5:  # a bundle of many messages
            body = b"".join(struct.pack(">i", len(m)) + m for m in [build("/msanii/ping", k) for k in range(80)])
            out.append(b"#bundle\x00" + struct.pack(">Q", 1) + body)
        elif kind == 6:
            out.append(build("/msanii/" + "".join(rng.choice("abz/") for _ in range(rng.randint(1, 40)))))
        else:
            out.append(build("/msanii/done", "x", "/etc/passwd", 1.0, 1))
    return out


def test_hostile_campaign(engine, tmp_path):
    world = _world(tmp_path)
    out = tmp_path / "out"
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    bridge = OscBridge(engine, PathPolicy(out, [world["inputs"]]), port=0, reply_port=None, max_pending=4,
                       settings=RenderSettings(steps=1, gl_iters=1), limits=LIMITS).start()
    client = OscClient(bridge.address)
    other = OscClient(bridge.address)  # registrations that succeed redirect only this one's replies
    before = snapshot(tmp_path, out)
    tally = {"packets": 0, "paths": 0, "files": 0, "arguments": 0, "accepted": 0, "done": 0}
    job_no = 0

    def alive(token: str) -> None:
        client.send("/msanii/ping", token)
        client.wait_for("/msanii/pong", lambda m: m.args == [token], timeout=20)
        assert bridge._thread.is_alive()

    def job(address: str, args: list) -> None:
        """Send a job request (under a fresh id unless the test varies the id itself) and wait until the queue is
        idle again: an accepted job that never ends would be an unbounded one."""
        nonlocal job_no
        job_no += 1
        if args[:1] == ["id"] or not args:
            args = [f"j{job_no}", *args[1:]]
        client.send(address, *args)
        alive(f"job{job_no}")
        deadline = time.monotonic() + 120
        while bridge.jobs.status()["state"] != "idle":
            assert time.monotonic() < deadline, f"unbounded job: {address} {args}"
            time.sleep(0.05)

    try:
        rng = random.Random(0x18)
        packets = hostile_packets(rng, 2000)
        for k in range(0, len(packets), 40):
            for data in packets[k:k + 40]:
                client.send_raw(data)
                tally["packets"] += 1
            alive(f"p{k}")
        paths = hostile_paths(world["inputs"], world["secret"])
        for path in paths:
            for address, before_args, after_args in (  # each path in every position a path can take
                    ("/msanii/audio2audio", [], [0.5]), ("/msanii/inpaint", [], [0.1, 0.2]),
                    ("/msanii/outpaint", [], [0.0, 0.3]), ("/msanii/interpolate", [], [str(world["files"]["good.wav"]), 0.5]),
                    ("/msanii/interpolate", [str(world["files"]["good.wav"])], [0.5])):
                job(address, ["id", *before_args, path, *after_args])
                tally["paths"] += 1
            client.send("/msanii/play", path)
            tally["paths"] += 1
        alive("paths")
        for name, path in world["files"].items():
            for address, args in (("/msanii/audio2audio", [str(path), 0.5]), ("/msanii/inpaint", [str(path), 0.1, 0.3]),
                                  ("/msanii/outpaint", [str(path), 0.0, 0.5]),
                                  ("/msanii/interpolate", [str(path), str(world["files"]["good.wav"]), 0.5])):
                job(address, ["id", *args])
                tally["files"] += 1
        alive("files")
        for address, args in hostile_arguments(str(world["files"]["good.wav"])):
            if address in JOB_VERBS:
                job(address, args)
            elif address == "/msanii/register":
                other.send(address, *args)
            else:
                client.send(address, *args)
                if address == "/msanii/set":  # keep later jobs cheap whatever was set
                    client.send("/msanii/set", "steps", 1)
                    client.send("/msanii/set", "gl_iters", 1)
            tally["arguments"] += 1
            if tally["arguments"] % 50 == 0:
                alive(f"a{tally['arguments']}")
        client.send("/msanii/set", "output_dir", "")
        alive("end")
    finally:
        client.close()
        other.close()
        bridge.close()
        logging.getLogger().removeHandler(errors)
        os.chmod(world["inputs"] / "unreadable.wav", 0o600)

    internal = [m.args for m in client.received if m.address == "/msanii/fail" and "internal error" in str(m.args)]
    crashes = len(internal) + len(errors.records)
    outside = {p: v for p, v in snapshot(tmp_path, out).items() if before.get(p) != v}
    outputs = [p for p in out.rglob("*") if p.is_file()]
    non_finite = [p for p in outputs if not all_finite(p)]
    limit = LIMITS.max_input_seconds + LIMITS.max_render_seconds
    unbounded = [p for p in outputs if sf.info(str(p)).duration > limit]
    tally["accepted"] = len(client.of("/msanii/accepted"))
    tally["done"] = len(client.of("/msanii/done"))
    print(f"\nhostile campaign: {tally['packets']} packets, {tally['paths']} paths, {tally['files']} files x tasks, "
          f"{tally['arguments']} argument vectors; {tally['accepted']} jobs accepted, {tally['done']} done, "
          f"{len(outputs)} files written; crashes {crashes}, files outside the output root {len(outside)}, "
          f"non-finite outputs {len(non_finite)}, unbounded jobs {len(unbounded)}")
    assert crashes == 0, (internal, [r.getMessage() for r in errors.records])
    assert outside == {}
    assert non_finite == [] and unbounded == []
    assert tally["done"] == len(outputs) and not [p for p in outputs if p.name.startswith(".")]
