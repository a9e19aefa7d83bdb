"""Hostile use of the OSC protocol itself, over real UDP: no file-existence oracle outside the allowed folders,
the documented longest render accepted as float32, counters that count what docs/osc.md says, registration to
special targets refused, and no reply much larger than its request to an unregistered sender."""
from __future__ import annotations

import re
import socket

import numpy as np
import pytest
import torch

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from osc_helpers import REPO, OscClient, build

FAST = RenderSettings(steps=1, gl_iters=0)
RATIO = 8.0  # docs/osc.md: a reply to an unregistered sender is at most this many times its request


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.fixture()
def served(engine, tmp_path):
    out, inputs, secret = tmp_path / "out", tmp_path / "inputs", tmp_path / "secret"
    inputs.mkdir()
    secret.mkdir()
    (secret / "private.wav").write_bytes(b"RIFF")
    (secret / "folder").mkdir()
    (inputs / "escape.wav").symlink_to(secret / "private.wav")
    (inputs / "dangling.wav").symlink_to(secret / "missing.wav")
    (inputs / "dirlink").symlink_to(secret, target_is_directory=True)
    bridge = OscBridge(engine, PathPolicy(out, [inputs]), port=0, reply_port=None, settings=FAST).start()
    client = OscClient(bridge.address)
    yield bridge, client, inputs, secret
    client.close()
    bridge.close()


def ask(client: OscClient, address: str, *args) -> list:
    """Send and return the next /msanii/fail's args (the client's received list is cleared first)."""
    client.received.clear()
    client.send(address, *args)
    return client.wait_for("/msanii/fail", timeout=10).args


def test_outside_paths_get_one_reply_whether_or_not_they_exist(served):
    bridge, client, inputs, secret = served
    pairs = [  # (exists, does not exist): each pair must be answered alike, with the path itself masked
        (str(secret / "private.wav"), str(secret / "nothing.wav")),
        (str(secret / "folder"), str(secret / "nofolder")),
        (str(inputs / ".." / "secret" / "private.wav"), str(inputs / ".." / "secret" / "nothing.wav")),
        (str(inputs / "dirlink" / "private.wav"), str(inputs / "dirlink" / "nothing.wav")),
        (str(inputs / "escape.wav"), str(inputs / "dangling.wav")),
        ("/etc/passwd", "/etc/no-such-passwd"),
        ("/root", "/no-such-root"),
        (str(secret / "private.wav") + "/x", str(secret / "nothing.wav") + "/x"),  # a file used as a folder
    ]
    tried = 0
    for address, extra in (("/msanii/play", ()), ("/msanii/audio2audio", (0.5,)), ("/msanii/inpaint", (0.1, 0.2))):
        for there, missing in pairs:
            job = () if address == "/msanii/play" else ("j",)
            a = ask(client, address, *job, there, *extra)
            b = ask(client, address, *job, missing, *extra)
            tried += 2
            assert a[1].replace(there, "<path>") == b[1].replace(missing, "<path>"), (a, b)
            assert "outside the allowed input folders" in a[1], a
    print(f"\noracle: {tried} outside paths (half existing), one reply shape")


def _documented_longest() -> float:
    text = (REPO / "docs" / "osc.md").read_text()
    return float(re.search(r"0 < seconds ≤ ([0-9.]+)", text).group(1))


def test_the_documented_longest_generate_is_rendered_and_a_longer_one_refused(served):
    bridge, client, _, _ = served
    longest = _documented_longest()
    client.send("/msanii/generate", "longest", float(np.float32(longest)), 1)  # python-osc sends float32
    answer = client.outcome("longest", timeout=180)
    assert answer.address == "/msanii/done", answer.args
    done = answer.args
    assert done[2] == pytest.approx(longest, abs=0.01)
    reason = ask(client, "/msanii/generate", "over", longest + 0.01)[1]
    assert f"{longest}" in reason, reason
    assert client.of("/msanii/accepted", "over") == []


def test_counters_count_what_the_docs_say(served):
    bridge, client, inputs, _ = served
    text = (REPO / "docs" / "osc.md").read_text()
    for name in ("packets", "malformed", "oversized", "rejected", "unknown", "ignored"):
        assert f"`{name}`" in text, f"docs/osc.md does not define the {name} counter"
    client.send("/msanii/nope", 1)                          # unknown address: answered, counted as unknown
    client.send("/other")                                   # unknown
    client.send("/msanii/generate", "g", "ten")             # rejected: bad argument
    client.send("/msanii/done", "x", "y")                   # ignored: another server's reply
    client.send_raw(b"\x00garbage")                         # malformed
    client.send_raw(build("/msanii/ping", "a" * 17000))     # oversized
    client.send("/msanii/ping", "sync")
    client.wait_for("/msanii/pong", lambda m: m.args == ["sync"], timeout=5)
    client.send("/msanii/status")
    status = client.wait_for("/msanii/status", timeout=5).args
    packets, malformed, oversized, rejected = status[4:8]
    unknown, ignored = status[11:13]
    assert (packets, malformed, oversized, rejected, unknown, ignored) == (8, 1, 1, 1, 2, 1), status
    fails = [m.args[1] for m in client.of("/msanii/fail")]
    assert sorted(fails) == sorted(["unknown address /msanii/nope", "unknown address /other",
                                    "seconds must be a number, got string 'ten'"]), fails


def test_register_to_special_targets_is_refused(served):
    bridge, client, _, _ = served
    own = bridge.address[1]
    cases = {
        ("0.0.0.0", 9001): "reply host must be the sender's own address",
        ("0.0.0.0", own): "reply host must be the sender's own address",
        ("127.0.0.1", own): "must not be the server's own port",
        ("127.0.0.2", own): "must not be the server's own port",
        ("localhost", own): "must not be the server's own port",
        ("127.0.0.1", 0): "port must be in 1..65535",
        ("127.0.0.1", 65536): "port must be in 1..65535",
        ("127.0.0.1", -1): "port must be in 1..65535",
        ("224.0.0.1", 9001): "reply host must be the sender's own address",
        ("255.255.255.255", 9001): "reply host must be the sender's own address",
        ("::1", 9001): "reply host",
        ("example.com", 9001): "numeric IP address",
    }
    for (host, port), reason in cases.items():
        assert reason in ask(client, "/msanii/register", host, port)[1], (host, port)
    assert reason_for_own_port(client, own)
    client.send("/msanii/ping", "still-here")  # replies still reach the client: no registration took effect
    assert client.wait_for("/msanii/pong", timeout=5).args == ["still-here"]
    print(f"\nregister: {len(cases) + 1} special targets refused")


def reason_for_own_port(client: OscClient, own: int) -> bool:
    return "server's own port" in ask(client, "/msanii/register", own)[1]


VERB_REQUESTS = [  # (address, args): every verb, bare and with typical bad arguments
    ("/msanii/generate", []), ("/msanii/generate", ["g"]), ("/msanii/generate", ["g", "x"]),
    ("/msanii/audio2audio", []), ("/msanii/audio2audio", ["a"]), ("/msanii/audio2audio", ["a", "/x", 0.5]),
    ("/msanii/interpolate", []), ("/msanii/interpolate", ["i", "/a", "/b", 2.0]),
    ("/msanii/inpaint", []), ("/msanii/inpaint", ["p", "/x", 1.0, 0.5]), ("/msanii/outpaint", []),
    ("/msanii/outpaint", ["o", "/x", 0, 0]), ("/msanii/loop", []), ("/msanii/loop", ["l", 1, "parsecs"]),
    ("/msanii/cancel", []), ("/msanii/cancel", ["nope"]), ("/msanii/set", []), ("/msanii/set", ["a"]),
    ("/msanii/set", ["colour", 1]), ("/msanii/set", ["steps", 0]), ("/msanii/set", ["steps", 3]),
    ("/msanii/register", []), ("/msanii/register", ["h", 1, 2]), ("/msanii/status", []), ("/msanii/ping", []),
    ("/msanii/ping", [1, 2, 3]), ("/msanii/play", []), ("/msanii/play", ["/x"]), ("/msanii/stop", []),
    ("/x", []), ("/", []), ("/msanii/x", []), ("/" + "y" * 200, []),
]
RAW_REQUESTS = [b"/\0\0\0", b"/msanii/status\0\0", b"/msanii/set\0", b"/msanii/register\0\0\0\0",
                b"/msanii/x\0\0\0", b"/msanii/ping\0\0\0\0"]  # old-style messages without a type tag string


def test_no_reply_is_more_than_a_few_times_its_request(served):
    """Each verb from an unregistered sender: every reply datagram at most RATIO x the request's bytes."""
    bridge, _, _, _ = served
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.3)
    worst = (0.0, None)
    try:
        for address, args in VERB_REQUESTS + [(raw, None) for raw in RAW_REQUESTS]:
            request = build(address, *args) if args is not None else address
            sock.sendto(request, bridge.address)
            replies = []
            while True:
                try:
                    replies.append(sock.recv(65536))
                except socket.timeout:
                    break
            assert replies, f"no reply to {address} {args}"
            for reply in replies:
                ratio = len(reply) / len(request)
                worst = max(worst, (ratio, (address, args, len(request), len(reply))), key=lambda w: w[0])
                assert ratio <= RATIO, (address, args, len(request), len(reply), reply[:120])
    finally:
        sock.close()
    print(f"\nreply/request: {len(VERB_REQUESTS) + len(RAW_REQUESTS)} requests, worst ratio {worst[0]:.2f} {worst[1]}")
