"""Reading and writing audio files safely: atomic writes, no silent overwrite, no clipping.

Audio arrays are float32 [channels, samples]. Output: WAV (16/24-bit int, 32-bit float) or FLAC (16/24-bit).
A peak above full scale is brought down by one gain (reported, never silently clipped); 16-bit output gets TPDF
dither (seeded, so the same audio always gives the same file).
"""
from __future__ import annotations

import math
import os
from glob import escape as glob_escape
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

FORMATS = {"wav": "WAV", "flac": "FLAC"}
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
CEILING = 10 ** (-0.1 / 20)  # -0.1 dBFS: where a too-loud render's peak is put


class AudioIOError(ValueError):
    """An audio file cannot be read or written; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioFile:
    audio: np.ndarray  # float32 [channels, samples]
    sample_rate: int
    subtype: str
    format: str


@dataclass(frozen=True)
class WriteResult:
    path: Path
    limited: bool  # a gain was applied to keep the peak under full scale
    peak: float  # peak of the audio as given (before any gain)
    gain_db: float = 0.0
    format: str = "WAV"
    subtype: str = "PCM_24"
    sample_rate: int = 44100


def read_audio(path: str | Path) -> AudioFile:
    path = Path(path)
    if not path.is_file():
        raise AudioIOError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioIOError(f"cannot read audio file {path}: {exc}") from None
    if data.shape[0] == 0:
        raise AudioIOError(f"audio file {path} is empty")
    return AudioFile(np.ascontiguousarray(data.T), int(rate), info.subtype, info.format)


def resample(audio: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    """[C, N] float32 at rate_in -> [C, length or about N*rate_out/rate_in] with soxr (VHQ)."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    target = length if length is not None else round(audio.shape[-1] * rate_out / rate_in)
    if rate_in == rate_out:
        out = audio
    else:
        out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="VHQ").T
    if out.shape[-1] < target:
        out = np.pad(out, ((0, 0), (0, target - out.shape[-1])))
    return np.ascontiguousarray(out[:, :target], dtype=np.float32)


def _resolve_format(path: Path, format: str | None, bit_depth: str | int | None) -> tuple[str, str]:
    fmt = (format or path.suffix.lstrip(".") or "wav").lower()
    if fmt not in FORMATS:
        raise AudioIOError(f"unsupported output format {fmt!r} for {path}: use wav or flac")
    depth = "24" if bit_depth is None else str(bit_depth).lower()
    depth = {"32": "32f", "float": "32f"}.get(depth, depth)
    if depth not in BIT_DEPTHS:
        raise AudioIOError(f"unsupported bit depth {bit_depth!r}: use 16, 24 or 32f")
    if fmt == "flac" and depth == "32f":
        raise AudioIOError("FLAC stores integers only: use --bit-depth 16 or 24 with flac, or wav for 32f")
    return FORMATS[fmt], BIT_DEPTHS[depth]


def _tpdf_dither(audio: np.ndarray, bits: int) -> np.ndarray:
    rng = np.random.default_rng(0x6d73616e)  # fixed: same audio -> same file
    lsb = 2.0 ** (1 - bits)
    noise = (rng.random(audio.shape, dtype=np.float32) - rng.random(audio.shape, dtype=np.float32)) * lsb
    return audio + noise


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished file `tmp` its final name. Without `overwrite` an existing `path` is never replaced,
    even one that appeared while we rendered (link() refuses an existing name atomically): FileExistsError."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)") from None
    except OSError:  # filesystems without hard links
        if path.exists():
            raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)") from None
        os.replace(tmp, path)


def temp_name(path: Path, pid: int) -> Path:
    """Where process `pid` writes `path` before publishing it (hidden, next to it: same filesystem)."""
    return path.with_name(f".{path.name}.tmp-{pid}")


def reserve_temp(path: Path) -> Path:
    """Create this process's empty temp file for `path` and return its name. Done with os.open rather than left to
    libsndfile, whose error for an unwritable folder is only "System error": this one names the cause
    (Permission denied, Read-only file system, ...)."""
    tmp = temp_name(path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise AudioIOError(f"cannot write {path}: {exc.strerror or exc} (in {path.parent})") from None
    os.close(fd)
    return tmp


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temp files of `path` left by writers that no longer run (a process killed mid-write cannot clean
    up after itself). Only names `.{name}.tmp-{pid}` whose pid is dead are touched. Returns what was removed."""
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, format: str | None = None,
                bit_depth: str | int | None = None, overwrite: bool = False) -> WriteResult:
    """Write `audio` [C, N] float to `path` atomically (temp file in the same folder, then rename).
    Refuses an existing path unless `overwrite`. Returns what was written and whether a gain was applied."""
    path = Path(path).expanduser()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioIOError(f"audio must be [channels, samples] with samples > 0, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioIOError("audio holds NaN or infinite samples; refusing to write it")
    fmt, subtype = _resolve_format(path, format, bit_depth)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
        raise AudioIOError(f"output folder does not exist: {path.parent}")
    peak = float(np.abs(audio).max())
    gain = CEILING / peak if peak > 1.0 else 1.0
    out = audio * gain if gain != 1.0 else audio
    if subtype == "PCM_16":
        out = np.clip(_tpdf_dither(out, 16), -1.0, 1.0 - 2.0 ** -15)
    remove_stale_temps(path)
    tmp = reserve_temp(path)
    try:
        sf.write(str(tmp), out.T, int(sample_rate), subtype=subtype, format=fmt)
        publish(tmp, path, overwrite)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioIOError(f"cannot write {path}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return WriteResult(path, gain != 1.0, peak, 20 * math.log10(gain), fmt, subtype, int(sample_rate))
