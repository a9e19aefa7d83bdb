"""Equal-power crossfades. Every function takes any leading dimensions; time is the last axis.

Equal power (sin/cos) keeps the loudness constant across a fade between uncorrelated signals (new material vs
the original), where a linear fade dips by 3 dB in the middle. Works on numpy arrays and torch tensors.
"""
from __future__ import annotations

import numpy as np


def equal_power_curves(length: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(fade_in, fade_out) of `length` samples with fade_in**2 + fade_out**2 == 1.

    Samples sit at the centres of `length` equal steps, so neither curve contains an exact 0 or 1 and two fades
    placed back to back never repeat a gain value."""
    if length < 0:
        raise ValueError(f"crossfade length must be >= 0, got {length}")
    phase = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1) * (np.pi / 2)
    return np.sin(phase).astype(dtype), np.cos(phase).astype(dtype)


def crossfade(outgoing, incoming, dtype=None):
    """Equal-power crossfade from `outgoing` to `incoming` over their whole (equal) last axis.

    Shapes: outgoing, incoming [..., n] (broadcastable) -> [..., n]."""
    n = outgoing.shape[-1]
    if incoming.shape[-1] != n:
        raise ValueError(f"crossfade needs equal lengths, got {n} and {incoming.shape[-1]}")
    fade_in, fade_out = equal_power_curves(n)
    if hasattr(outgoing, "new_tensor"):  # torch
        fade_in, fade_out = outgoing.new_tensor(fade_in), outgoing.new_tensor(fade_out)
    return outgoing * fade_out + incoming * fade_in


def blend_into_region(original, new, fade: int, fade_start: bool = True, fade_end: bool = True):
    """New material for a region, faded in from and out to the original *inside* the region.

    Shapes: original, new [..., n] (the same span of time) -> [..., n]. The first `fade` samples crossfade from
    `original` to `new`, the last `fade` samples back to `original`; audio outside the region is not touched, so
    the region's first/last samples sit right next to the untouched original with no step. A region shorter than
    two fades uses fades of a quarter of its length each. `fade_start`/`fade_end` False skip an edge that is the
    file's own start/end (there is no original beyond it to join)."""
    n = new.shape[-1]
    if original.shape[-1] != n:
        raise ValueError(f"original and new spans differ in length: {original.shape[-1]} vs {n}")
    fade = max(0, min(fade, n // 4 if n < 2 * fade else fade))
    out = new * 1.0  # a copy in the same type (numpy or torch)
    if fade > 0 and fade_start:
        out[..., :fade] = crossfade(original[..., :fade], new[..., :fade])
    if fade > 0 and fade_end:
        out[..., n - fade:] = crossfade(new[..., n - fade:], original[..., n - fade:])
    return out


def fade_edge(new, fade: int, side: str):
    """Fade the outer edge of generated material in ("start") or out ("end"), so a file made longer by
    outpainting never starts or ends on a step. Shapes: new [..., n] -> [..., n]."""
    if side not in ("start", "end"):
        raise ValueError(f"side must be 'start' or 'end', got {side!r}")
    n = new.shape[-1]
    fade = max(0, min(fade, n))
    if fade == 0:
        return new * 1.0
    fade_in, fade_out = equal_power_curves(fade)
    curve = fade_in if side == "start" else fade_out
    if hasattr(new, "new_tensor"):
        curve = new.new_tensor(curve)
    out = new * 1.0
    if side == "start":
        out[..., :fade] = out[..., :fade] * curve
    else:
        out[..., n - fade:] = out[..., n - fade:] * curve
    return out
