"""Test clips for the region-task tests: short music-like audio in any rate, channel count and file format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def music(seconds: float, rate: int, channels: int, seed: int = 0, dc: float = 0.0) -> np.ndarray:
    """Decaying harmonic notes plus a little noise, float64 [samples, channels] in (-1, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = np.zeros((t.size, channels))
    for i, f0 in enumerate((110.0, 164.8, 220.0, 277.2)):
        phase = np.mod(t + 0.17 * i, 0.5)
        env = (1 - np.exp(-300.0 * phase)) * np.exp(-4.0 * phase)  # 3 ms attack: notes start without a click
        tone = sum(np.sin(2 * np.pi * f0 * k * t + i) / k for k in range(1, 5))
        out[:, i % channels] += 0.08 * env * tone
    return out + 0.005 * rng.standard_normal(out.shape) + dc


def write_clip(path: Path, seconds: float, rate: int, channels: int, subtype: str = "PCM_24",
               fmt: str | None = None, seed: int = 0, dc: float = 0.0) -> Path:
    sf.write(str(path), music(seconds, rate, channels, seed, dc), rate, subtype=subtype, format=fmt)
    return path
