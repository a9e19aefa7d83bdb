"""The non-finite audio policy, one definition for every task, the OSC server and `msanii-render`.

Input: a file holding NaN or infinite samples (only float files can) is refused before any work, naming the first
bad sample's time and channel; nothing is repaired silently (a DAW user wants to find the broken clip, and a
"repaired" render would hide it). Output: new material that comes out non-finite, whatever the cause (an absurd
but finite input level that overflows the STFT, a broken model), is never quantised, written or reported done.
"""
from __future__ import annotations

import numpy as np


class NonFiniteAudio(ValueError):
    """Audio holds NaN or infinite samples; the message says where (a ValueError, as the engine's other
    argument errors: one line in msanii-render, the fail reason over OSC)."""


def first_non_finite(samples: np.ndarray) -> tuple[int, int] | None:
    """(frame, channel) of the first NaN/inf in [frames, channels] samples, or None when all are finite."""
    if samples.dtype.kind != "f":
        return None  # integer PCM cannot hold them
    bad = ~np.isfinite(samples)
    if not bad.any():
        return None
    bad = bad.reshape(bad.shape[0], -1)
    frame = int(np.argmax(bad.any(axis=1)))
    return frame, int(np.argmax(bad[frame]))


def check_input(samples: np.ndarray, sample_rate: int, where: object, offset: int = 0) -> None:
    """Refuse [frames, channels] input samples with a NaN/inf (`offset`: the first frame's index in the file)."""
    found = first_non_finite(samples)
    if found is not None:
        frame, channel = found
        raise NonFiniteAudio(f"{where} holds non-finite samples (NaN or infinity), the first at "
                             f"{(frame + offset) / sample_rate:.3f} s (sample {frame + offset}, channel {channel + 1}); "
                             "nothing was rendered: repair or re-export the file")


def check_output(audio: np.ndarray) -> None:
    """Refuse rendered audio (any shape) with a NaN/inf: it must not be quantised, written or reported done."""
    audio = np.asarray(audio)
    if audio.dtype.kind == "f" and not np.isfinite(audio).all():
        count = int((~np.isfinite(audio)).sum())
        raise NonFiniteAudio(f"the render came out with {count} non-finite samples (NaN or infinity); nothing was "
                             "written (an input level far beyond full scale, or a broken model)")
