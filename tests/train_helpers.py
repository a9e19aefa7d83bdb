"""Helpers for the trainer tests: real audio files written to disk for AudioFolderDataset."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 44_100


def music_clip(samples: int, seed: int = 0, noise: float = 0.005) -> np.ndarray:
    """Stereo decaying harmonic notes plus `noise` (RMS) of white noise, float32 [samples, 2] (soundfile layout)."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SAMPLE_RATE
    audio = np.zeros((samples, 2))
    for i, f0 in enumerate(rng.uniform(110.0, 440.0, size=4)):
        envelope = np.exp(-4.0 * np.remainder(t + 0.11 * i, 0.4))
        tone = sum(np.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 6))
        audio[:, i % 2] += 0.12 * envelope * tone
        audio[:, (i + 1) % 2] += 0.05 * envelope * tone
    audio += noise * rng.standard_normal(audio.shape)
    return audio.astype(np.float32)


def write_clips(folder: Path, count: int = 3, seconds: float = 2.0, samples: int | None = None,
                noise: float = 0.005) -> Path:
    """`count` 16-bit stereo WAV files in `folder` (created), each `samples` long (default `seconds`)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = samples if samples is not None else int(seconds * SAMPLE_RATE)
    for i in range(count):
        sf.write(folder / f"clip{i}.wav", music_clip(n, seed=i, noise=noise), SAMPLE_RATE, subtype="PCM_16")
    return folder
