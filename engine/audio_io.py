"""Audio files in and out, the one place for formats, bit depths and their error: atomic writes, no silent
overwrite, no clipping, and a user's own samples kept bit-identical.

Two ways through:
- new clips (`write_audio`): float32 [channels, samples] to WAV (16/24-bit int, 32-bit float) or FLAC (16/24-bit).
  A peak above full scale is brought down by one gain (reported, never silently clipped); 16-bit output gets TPDF
  dither (seeded, so the same audio always gives the same file).
- edits of a user's file (`read_native` / `write_native`): untouched audio never goes through float, resampling
  or re-quantisation. PCM files are read as integers in a container wide enough for their bit depth (int16 for
  <= 16-bit, int32 for 24/32-bit), float files as float32/64, and spliced arrays are written back with the same
  subtype, which libsndfile stores without any conversion. Only the generated material is quantised, to exactly
  the file's bit depth, so libsndfile's container->file conversion is a plain shift. Lossy inputs (OGG
  Vorbis/Opus, MP3) cannot be re-encoded without changing every sample, so by default their edits are written as
  32-bit float WAV holding the decoded samples unchanged.

Bit depths a user names (`BIT_DEPTHS`, the same for msanii-render, OSC and the Python API): 16, 24, or 32-bit
float ("32f"; "32" and "float" mean the same). A 32-bit integer file is only ever written as an input's own depth.
"""
from __future__ import annotations

import math
import os
from glob import escape as glob_escape
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from engine.finite import check_input, check_output

if TYPE_CHECKING:
    from engine.limits import Limits

FORMATS = {"wav": "WAV", "flac": "FLAC"}  # containers new clips are written in
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}  # the one bit-depth table (see the docstring)
BIT_DEPTH_ALIASES = {"32": "32f", "float": "32f"}
# libsndfile subtype -> (container dtype, significant bits) of files whose samples are kept natively; anything
# else is treated as lossy/companded.
_PCM = {"PCM_S8": ("int16", 8), "PCM_U8": ("int16", 8), "PCM_16": ("int16", 16), "PCM_24": ("int32", 24),
        "PCM_32": ("int32", 32), "FLOAT": ("float32", 0), "DOUBLE": ("float64", 0)}
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
    subtype = subtype_for(24 if bit_depth is None else bit_depth)
    if fmt == "flac" and subtype == "FLOAT":
        raise AudioIOError("FLAC stores integers only: use --bit-depth 16 or 24 with flac, or wav for 32f")
    return FORMATS[fmt], subtype


def subtype_for(bit_depth: str | int) -> str:
    """The libsndfile subtype of a bit depth a user names: 16, 24, 32 / "32f" / "float" (32-bit float)."""
    depth = str(bit_depth).lower()
    depth = BIT_DEPTH_ALIASES.get(depth, depth)
    if depth not in BIT_DEPTHS:
        raise AudioIOError(f"unsupported bit depth {bit_depth!r}: use 16, 24 or 32f")
    return BIT_DEPTHS[depth]


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


# ---- a user's file in its own samples (edits) ------------------------------------------------------------------

@dataclass
class NativeAudio:
    """A file's samples in their native type. samples: [frames, channels] (soundfile's layout)."""
    samples: np.ndarray
    sample_rate: int
    subtype: str
    format: str
    path: Path | None = None

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def lossless(self) -> bool:
        return self.subtype in _PCM

    def to_float(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples [start, end) as float32 [channels, n] in [-1, 1)."""
        return samples_to_float(self.samples[start:end]).T.copy()

    def quantise(self, audio: np.ndarray, subtype: str | None = None) -> np.ndarray:
        """Float audio [channels, n] -> [n, channels] in this file's (or `subtype`'s) native type."""
        return float_to_samples(audio.T, subtype or self.subtype)


def container_dtype(subtype: str) -> np.dtype:
    return np.dtype(_PCM[subtype][0]) if subtype in _PCM else np.dtype("float32")


def samples_to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float32)
    scale = float(2 ** (8 * samples.dtype.itemsize - 1))
    return (samples.astype(np.float64) / scale).astype(np.float32)


def float_to_samples(audio: np.ndarray, subtype: str, dither: bool = False) -> np.ndarray:
    """Float audio (any shape) -> the container type of `subtype`, quantised to its bit depth (rounded, clipped).
    `dither`: TPDF dither of one LSB for depths <= 16 bits (seeded: the same audio gives the same file); used for
    new material only - the user's own samples are never re-quantised."""
    check_output(audio)  # NaN would quantise to full-scale garbage; every new sample passes through here
    dtype = container_dtype(subtype)
    if dtype.kind == "f":
        return np.asarray(audio, dtype=dtype)
    bits = _PCM[subtype][1]
    full = float(2 ** (bits - 1))
    scaled = np.asarray(audio, dtype=np.float64) * full
    if dither and bits <= 16:
        rng = np.random.default_rng(0x6D73616E)
        scaled = scaled + rng.random(scaled.shape) - rng.random(scaled.shape)
    q = np.clip(np.round(scaled), -full, full - 1)
    shift = 8 * dtype.itemsize - bits
    return (q.astype(np.int64) << shift).astype(dtype)


def read_native(path: str | os.PathLike, limits: "Limits | None" = None, start: int = 0,
                frames: int | None = None) -> NativeAudio:
    """Read a WAV/FLAC/OGG/AIFF file without converting its samples. Raises AudioIOError with the reason.

    The header is checked first (channels, rate and `limits.max_input_seconds`), so an unusable or too long file
    costs no memory; `start`/`frames` read only that span (tasks that need only the start of a file). Float
    samples that are NaN or infinite are refused (engine.finite)."""
    from engine.limits import UNBOUNDED, read_header
    path = Path(path)
    if not path.exists():
        raise AudioIOError(f"input file {path} does not exist")
    header = read_header(path)
    (limits or UNBOUNDED).check_input(header.seconds, path)
    try:
        info = sf.info(str(path))
        dtype = container_dtype(info.subtype)
        samples, rate = sf.read(str(path), dtype=dtype.name, always_2d=True, start=start,
                                frames=-1 if frames is None else frames)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioIOError(f"cannot read {path}: {exc}") from exc
    if samples.shape[0] == 0:
        raise AudioIOError(f"{path} contains no audio")
    if samples.shape[1] not in (1, 2):
        raise AudioIOError(f"{path} has {samples.shape[1]} channels; only mono and stereo are supported")
    check_input(samples, int(rate), path, offset=start)
    return NativeAudio(samples, int(rate), info.subtype, info.format, path)


def output_layout(source: NativeAudio, format: str | None = None, subtype: str | None = None,
                  bit_depth: int | str | None = None) -> tuple[str, str]:
    """(format, subtype) for an edited copy of `source`: the input's own by default; lossy inputs -> float WAV.

    `bit_depth`: one of BIT_DEPTHS (or an alias); `subtype` names a libsndfile subtype directly."""
    if subtype is None and bit_depth is not None:
        subtype = subtype_for(bit_depth)
    fmt = (format or (source.format if source.lossless else "WAV")).upper()
    if subtype is None:
        subtype = source.subtype if source.lossless else "FLOAT"
        if fmt == "FLAC" and subtype in ("FLOAT", "DOUBLE", "PCM_32"):
            subtype = "PCM_24"  # FLAC has no float or 32-bit: the closest lossless integer depth
        if fmt == "OGG":
            subtype = "VORBIS"
    if not sf.check_format(fmt, subtype):
        raise AudioIOError(f"format {fmt} cannot hold subtype {subtype}")
    return fmt, subtype


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse early (before any rendering) to overwrite an existing file or write into a missing folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise AudioIOError(f"{path} already exists; choose another name or allow overwriting")
    if not path.parent.exists():
        raise AudioIOError(f"output folder {path.parent} does not exist")
    return path


def write_native(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, format: str, subtype: str,
                 overwrite: bool = False) -> Path:
    """Write [frames, channels] samples already in the subtype's container type; temp file + rename, so a crash or
    error never leaves a partial file under `path` nor touches an existing one unless `overwrite`."""
    path = check_output_path(path, overwrite)
    if samples.dtype != container_dtype(subtype) and container_dtype(subtype).kind != "f":
        raise AudioIOError(f"internal: samples of type {samples.dtype} do not match subtype {subtype}")
    check_output(samples)
    remove_stale_temps(path)
    tmp = reserve_temp(path)
    try:
        sf.write(str(tmp), samples, int(sample_rate), subtype=subtype, format=format)
        try:
            publish(tmp, path, overwrite)
        except FileExistsError:
            raise AudioIOError(f"{path} already exists; choose another name or allow overwriting") from None
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioIOError(f"cannot write {path}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
