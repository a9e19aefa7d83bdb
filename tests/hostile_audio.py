"""Audio files a hostile or careless client can point the server at: non-finite float samples, absurd levels,
files too long to render, broken headers. Each writer returns the path (and, for non-finite files, the time of
the first bad sample, which the refusal must name)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.task_audio import music


def non_finite_wav(path: Path, seconds: float = 1.0, rate: int = 44_100, first_bad_s: float = 0.25,
                   subtype: str = "FLOAT") -> tuple[Path, float]:
    """Music in a float file with a NaN at `first_bad_s` (right channel) and +inf/-inf after it."""
    audio = music(seconds, rate, 2, seed=3)
    i = round(first_bad_s * rate)
    audio[i, 1] = np.nan
    audio[i + rate // 10, 0] = np.inf
    audio[i + rate // 5, :] = -np.inf
    sf.write(str(path), audio, rate, subtype=subtype)
    return path, i / rate


def loud_float_wav(path: Path, seconds: float = 1.0, rate: int = 44_100, level: float = 1e37) -> Path:
    """Finite but absurd float samples (|x| ~ 1e37): squaring them in an STFT overflows float32."""
    sf.write(str(path), music(seconds, rate, 2) * level, rate, subtype="FLOAT")
    return path


def long_wav(path: Path, seconds: float, rate: int = 8_000) -> Path:
    """A long mono 16-bit file, cheap to write: a low rate keeps an hour at 58 MB."""
    frames = int(seconds * rate)
    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16") as f:
        block = (0.1 * np.sin(np.arange(rate * 60) * 0.05)).astype(np.float32)
        for start in range(0, frames, block.size):
            f.write(block[:min(block.size, frames - start)])
    return path


def broken_files(folder: Path) -> dict[str, Path]:
    """Files with a .wav name that are not usable audio."""
    files = {"empty.wav": b"", "text.wav": b"not a wav file at all\n" * 10,
             "header-only.wav": _wav_header(0), "truncated.wav": _wav_header(1 << 30) + b"\x00\x01" * 100}
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    sf.write(str(folder / "eight-channels.wav"), np.zeros((4410, 8)), 44_100, subtype="PCM_16")
    out["eight-channels.wav"] = folder / "eight-channels.wav"
    sf.write(str(folder / "one-sample.wav"), np.zeros((1, 2)), 44_100, subtype="PCM_16")
    out["one-sample.wav"] = folder / "one-sample.wav"
    return out


def _wav_header(data_bytes: int) -> bytes:
    """A 44.1 kHz stereo 16-bit RIFF header whose data chunk claims `data_bytes`."""
    import struct
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, 44_100, 44_100 * 4, 4, 16)
    return b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + fmt + b"data" + struct.pack("<I", data_bytes)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_finite(path: Path) -> bool:
    audio, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return bool(np.isfinite(audio).all())
