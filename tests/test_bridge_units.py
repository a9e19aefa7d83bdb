"""Bridge building blocks without a server: strict OSC datagram check, argument coercion, path confinement and
output naming, settings."""

from __future__ import annotations

import os
import struct

import pytest

from bridge import protocol as p
from bridge.paths import PathPolicy, sanitise_stem
from bridge.replies import ReplyRouter
from bridge.settings import RenderSettings, apply_setting
from bridge.wire import MalformedPacket, split_packet
from osc_helpers import build


def bundle(*elements: bytes) -> bytes:
    """An OSC bundle (time tag "immediately") holding the given message/bundle datagrams."""
    return b"#bundle\x00" + struct.pack(">Q", 1) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


@pytest.mark.parametrize("args", [(), ("a",), (1, 2.5, "xyz", b"blob!"), (True, False, None, 1 << 40, "é")])
def test_well_formed_messages_pass(args):
    (msg,) = split_packet(build("/msanii/x", *args))
    assert msg.address == "/msanii/x" and list(msg.params) == list(args)


def test_bundles_nested_pass_and_depth_is_bounded():
    inner = bundle(build("/a", 1), build("/b", "s"))
    assert [m.address for m in split_packet(bundle(inner, build("/c")))] == ["/a", "/b", "/c"]
    deep = build("/z")
    for _ in range(5):
        deep = bundle(deep)
    with pytest.raises(MalformedPacket, match="nested too deeply"):
        split_packet(deep)


@pytest.mark.parametrize("data,why", [
    (b"", "not an OSC message"),
    (b"hello world!", "not an OSC message"),
    (b"/msanii/ping", "unterminated string"),  # no NUL after the address
    (b"/msanii/ping\x00\x00\x00\x00,Q\x00\x00", "unknown type tag"),
    (b"/msanii/ping\x00\x00\x00\x00,i\x00\x00", "truncated arguments"),
    (build("/a", 1) + b"\x00\x00\x00\x00", "trailing bytes"),
    (b"/a\x00\x00,s\x00\x00abcd", "unterminated string"),
    (b"/a\x00\x00,s\x00\x00ab\x00x", "bad string padding"),
    (b"/a\x00\x00,b\x00\x00" + struct.pack(">i", 64) + b"xxxx", "truncated arguments"),
    (b"/a\x00\x00,]\x00\x00", "unbalanced"),
    (b"/\xff\xfe\x00", "not UTF-8"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 12) + b"/a\x00\x00", "bad bundle element size"),
    (b"#bundle\x00" + b"\x00" * 4, "truncated bundle"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 4) + b"junk", "not an OSC message"),
])
def test_malformed_datagrams_are_refused(data, why):
    with pytest.raises(MalformedPacket, match=why):
        split_packet(data)


def test_argument_coercion():
    assert p.job_id(3.0) == "3" and p.job_id(7) == "7" and p.job_id("take 1") == "take 1"
    assert p.job_id(2.5) == "2.5"
    assert p.integer(4.0, "steps", 1, 10) == 4
    with pytest.raises(p.RequestError, match="whole number"):
        p.integer(4.5, "steps", 1, 10)
    assert p.seed(-1) is None and p.seed(12.0) == 12
    with pytest.raises(p.RequestError, match="control characters"):
        p.job_id("a\nb")
    with pytest.raises(p.RequestError, match="NUL"):
        p.string("a\x00b", "path")
    with pytest.raises(p.RequestError, match="got bool"):
        p.number(True, "seconds")
    assert p.fail_id("/msanii/generate", ["x", 1]) == "x" and p.fail_id("/msanii/generate", [b"b"]) == \
        "/msanii/generate"


def test_output_names_are_sanitised_confined_and_never_reused(tmp_path):
    policy = PathPolicy(tmp_path / "out")
    assert sanitise_stem("../../etc/passwd") == "etc_passwd"
    assert sanitise_stem("...") == "clip" and sanitise_stem("Kick & Snare #2") == "Kick_Snare_2"
    assert len(sanitise_stem("x" * 500)) == 48
    now = 1_800_000_000.0
    first = policy.output_path("take", "wav", now=now)
    assert first.parent == policy.output_root and first.name == "take-20270115-080000.wav"
    first.write_bytes(b"")
    second = policy.output_path("take", "wav", now=now)
    assert second.name == "take-20270115-080000-2.wav"
    os.symlink("/nonexistent", second)  # a dangling link is taken too: never write through it
    assert policy.output_path("take", "wav", now=now).name == "take-20270115-080000-3.wav"


def test_output_subdir_stays_inside_the_root(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    policy = PathPolicy(tmp_path / "out")
    assert policy.set_output_subdir("album/side a") == policy.output_root / "album" / "side a"
    (policy.output_root / "link").symlink_to(outside, target_is_directory=True)
    for bad in ("../elsewhere", str(outside), "link", "link/deeper"):
        with pytest.raises(p.RequestError, match="inside the output root"):
            policy.set_output_subdir(bad)
    assert policy.set_output_subdir("") == policy.output_root


def test_settings_validation():
    s, applied = apply_setting(RenderSettings(), "time_signature", [6.0, 8.0])
    assert (s.beats_per_bar, s.beat_unit, applied) == (6, 8, [6, 8])
    assert s.seconds_per_bar() == pytest.approx(1.5)  # six eighths = three quarter notes at 120 BPM
    s, _ = apply_setting(s, "format", ["FLAC"])
    with pytest.raises(p.RequestError, match="FLAC stores 16 or 24 bits"):
        apply_setting(s, "bit_depth", [32])
    with pytest.raises(p.RequestError, match="beat unit must be"):
        apply_setting(s, "time_signature", [4, 3])
    with pytest.raises(p.RequestError, match="expected 1 arguments"):
        apply_setting(s, "steps", [])


def test_reply_routing():
    router = ReplyRouter(lambda: ("127.0.0.1", 9000), default_port=9001)
    assert router.address_for(("127.0.0.1", 50000)) == ("127.0.0.1", 9001)
    assert router.register(("127.0.0.1", 50000), "localhost", 9100) == ("127.0.0.1", 9100)
    assert router.address_for(("127.0.0.1", 50000)) == ("127.0.0.1", 9100)
    assert router.address_for(("127.0.0.1", 50001)) == ("127.0.0.1", 9001)
    with pytest.raises(p.RequestError, match="sender's own address"):
        router.register(("192.168.1.5", 50000), "192.168.1.6", 9100)
    with pytest.raises(p.RequestError, match="numeric IP"):
        router.register(("127.0.0.1", 50000), "example.com", 9100)
    with pytest.raises(p.RequestError, match="server's own port"):
        router.register(("127.0.0.1", 50000), "127.0.0.2", 9000)
    assert ReplyRouter(lambda: ("127.0.0.1", 9000), None).address_for(("127.0.0.1", 5)) == ("127.0.0.1", 5)


def test_a_task_follows_the_tempo_only_once_the_client_set_one():
    """The server's 120 BPM is only the bar length's default: generate and edits get no tempo (no beat grid, or
    the bundle's own tempo) until /msanii/set bpm, then the one chosen, with the time signature."""
    from bridge.tasks import settings_params
    from engine.tasks import get_task
    from engine.limits import UNBOUNDED

    info = get_task("generate")
    assert settings_params(info, RenderSettings(), UNBOUNDED)["tempo"] is None
    s, _ = apply_setting(RenderSettings(), "bpm", [96.0])
    s, _ = apply_setting(s, "time_signature", [3, 4])
    tempo = settings_params(info, s, UNBOUNDED)["tempo"]
    assert (tempo.bpm, tempo.numerator, tempo.denominator) == (96.0, 3, 4)
    assert tempo.guidance is None  # the bundle's own beat guidance
    s, echoed = apply_setting(s, "beat_guidance", [2.5])
    assert echoed == [2.5] and settings_params(info, s, UNBOUNDED)["tempo"].guidance == 2.5
    for bad in (-1.0, 21.0, "x"):
        with pytest.raises(p.RequestError, match="beat_guidance"):
            apply_setting(s, "beat_guidance", [bad])
