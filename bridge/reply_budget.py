"""How large a reply may be against the request that caused it (docs/osc.md, Safety).

UDP senders can be spoofed: a server whose replies are much larger than the requests that trigger them would
let anyone aim amplified traffic at a third party's reply port. So a `/msanii/fail` reply is held to
`REPLY_RATIO` times its request's bytes: a reason (or, in the last resort, the echoed id) that would make it
longer is cut to fit. The other control replies are at most about as long as their request (pong, set) or of
fixed size (status, ~100 bytes against the 16-20 bytes of the smallest status request).
"""
from __future__ import annotations

REPLY_RATIO = 8
_FAIL_HEAD = 16 + 4  # "/msanii/fail" padded, ",ss" padded


def osc_string_bytes(text: str) -> int:
    """Bytes of an OSC string argument: UTF-8, a NUL, zero-padded to a multiple of 4."""
    return (len(text.encode("utf-8")) // 4 + 1) * 4


def _cut(text: str, room: int) -> str:
    """`text` shortened (by whole characters) to fit `room` encoded bytes; "" when even that does not."""
    if osc_string_bytes(text) <= room:
        return text
    while text and osc_string_bytes(text + "...") > room:
        text = text[:-max(1, len(text) // 8)]
    return text + "..." if text and osc_string_bytes(text + "...") <= room else ""


def fit_fail(fail_id: str, reason: str, request_bytes: int) -> tuple[str, str]:
    """(id, reason) for a fail reply to a request of `request_bytes`, within REPLY_RATIO x its size."""
    budget = REPLY_RATIO * request_bytes - _FAIL_HEAD
    reason = _cut(reason, max(4, budget - osc_string_bytes(fail_id)))
    fail_id = _cut(fail_id, max(4, budget - osc_string_bytes(reason)))
    return fail_id, reason
