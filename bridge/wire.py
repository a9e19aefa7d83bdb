"""Strict OSC 1.0 datagram check before python-osc decodes it.

python-osc is lenient on purpose (it skips unknown type tags and unparsable bundle elements with a warning on the
root logger, and ignores trailing bytes). A server facing hostile traffic wants the opposite: a datagram is either
exactly well formed or dropped and counted, and never costs a log line. `split_packet` walks the bytes once,
checks every length, padding and type tag, and returns the messages python-osc then decodes.
"""

from __future__ import annotations

import struct

from pythonosc.osc_message import OscMessage

BUNDLE_PREFIX = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 4
MAX_MESSAGES = 64
# Payload sizes of the fixed-size type tags python-osc decodes (s and b are measured; T F N carry no payload,
# [ ] delimit arrays). Other tags (c, S, I, ...) are refused: python-osc would silently skip them.
_FIXED = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0, "[": 0, "]": 0}


class MalformedPacket(ValueError):
    """The datagram is not well-formed OSC."""


def _padded_string_end(data: bytes, start: int) -> int:
    """Index after an OSC string starting at `start` (NUL-terminated, zero-padded to 4 bytes)."""
    nul = data.find(b"\x00", start)
    if nul < 0:
        raise MalformedPacket("unterminated string")
    end = (nul // 4 + 1) * 4
    if end > len(data) or data[nul:end].strip(b"\x00"):
        raise MalformedPacket("bad string padding")
    return end


def _check_message(data: bytes) -> None:
    if len(data) % 4 or not data.startswith(b"/"):
        raise MalformedPacket("not an OSC message")
    index = _padded_string_end(data, 0)
    try:
        data[:index].rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("address is not UTF-8") from None
    if index == len(data):
        return  # no type tag string: a message without arguments (old-style senders)
    if data[index:index + 1] != b",":
        raise MalformedPacket("type tag string must start with ','")
    tags_end = _padded_string_end(data, index)
    tags = data[index + 1:tags_end].rstrip(b"\x00").decode("ascii", errors="replace")
    depth = 0
    index = tags_end
    for tag in tags:
        if tag == "s":
            start = index
            index = _padded_string_end(data, index)
            try:
                data[start:index].rstrip(b"\x00").decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedPacket("string argument is not UTF-8") from None
        elif tag == "b":
            if index + 4 > len(data):
                raise MalformedPacket("truncated blob size")
            (size,) = struct.unpack(">i", data[index:index + 4])
            if size < 0:
                raise MalformedPacket("negative blob size")
            index += 4 + -(-size // 4) * 4
        elif tag in _FIXED:
            index += _FIXED[tag]
            depth += (tag == "[") - (tag == "]")
            if depth < 0:
                raise MalformedPacket("unbalanced array brackets")
        else:
            raise MalformedPacket(f"unknown type tag {tag!r}")
        if index > len(data):
            raise MalformedPacket("truncated arguments")
    if depth != 0:
        raise MalformedPacket("unbalanced array brackets")
    if index != len(data):
        raise MalformedPacket("trailing bytes after the arguments")


def _walk(data: bytes, depth: int, out: list[bytes]) -> None:
    if data.startswith(BUNDLE_PREFIX):
        if depth >= MAX_BUNDLE_DEPTH:
            raise MalformedPacket("bundles nested too deeply")
        if len(data) < 16 or len(data) % 4:
            raise MalformedPacket("truncated bundle")
        index = 16  # prefix + 8-byte time tag (ignored: requests run as they arrive)
        while index < len(data):
            if index + 4 > len(data):
                raise MalformedPacket("truncated bundle element size")
            (size,) = struct.unpack(">i", data[index:index + 4])
            index += 4
            if size <= 0 or size % 4 or index + size > len(data):
                raise MalformedPacket("bad bundle element size")
            _walk(data[index:index + size], depth + 1, out)
            index += size
        return
    _check_message(data)
    out.append(data)
    if len(out) > MAX_MESSAGES:
        raise MalformedPacket("too many messages in one packet")


def split_packet(data: bytes) -> list[OscMessage]:
    """The messages of a well-formed OSC packet (a message or a bundle); `MalformedPacket` otherwise."""
    raw: list[bytes] = []
    _walk(data, 0, raw)
    try:
        return [OscMessage(m) for m in raw]
    except Exception as exc:  # defensive: our check passed but python-osc disagrees
        raise MalformedPacket(str(exc)) from None
