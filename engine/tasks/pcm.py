"""The user's file in its own samples: read, splice new material, write, with untouched audio bit-identical.

Untouched audio never goes through float, resampling or re-quantisation: PCM files are read as integers in a
container wide enough for their bit depth (int16 for <= 16-bit, int32 for 24/32-bit), float files as float32/64,
and spliced arrays are written back with the same subtype, which libsndfile stores without any conversion. Only the
generated material is quantised, to exactly the file's bit depth, so libsndfile's container->file conversion is a
plain shift. Lossy inputs (OGG Vorbis/Opus, MP3) cannot be re-encoded without changing every sample, so by default
their edits are written as 32-bit float WAV holding the decoded samples unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from engine.audio_io import publish, remove_stale_temps, reserve_temp
from engine.finite import check_input, check_output

if TYPE_CHECKING:
    from engine.limits import Limits

# subtype -> (container dtype, significant bits); anything else is treated as lossy/companded.
_PCM = {"PCM_S8": ("int16", 8), "PCM_U8": ("int16", 8), "PCM_16": ("int16", 16), "PCM_24": ("int32", 24),
        "PCM_32": ("int32", 32), "FLOAT": ("float32", 0), "DOUBLE": ("float64", 0)}
_FORMATS = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "AIFF": ".aiff", "W64": ".w64", "RF64": ".wav",
            "WAVEX": ".wav"}


class AudioFileError(ValueError):
    """An input or output file that cannot be used; the message names the file and the problem."""


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
    """Read a WAV/FLAC/OGG/AIFF file without converting its samples. Raises AudioFileError with the reason.

    The header is checked first (channels, rate and `limits.max_input_seconds`), so an unusable or too long file
    costs no memory; `start`/`frames` read only that span (tasks that need only the start of a file). Float
    samples that are NaN or infinite are refused (engine.finite)."""
    from engine.limits import UNBOUNDED, read_header
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"input file {path} does not exist")
    header = read_header(path)
    (limits or UNBOUNDED).check_input(header.seconds, path)
    try:
        info = sf.info(str(path))
        dtype = container_dtype(info.subtype)
        samples, rate = sf.read(str(path), dtype=dtype.name, always_2d=True, start=start,
                                frames=-1 if frames is None else frames)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(f"cannot read {path}: {exc}") from exc
    if samples.shape[0] == 0:
        raise AudioFileError(f"{path} contains no audio")
    if samples.shape[1] not in (1, 2):
        raise AudioFileError(f"{path} has {samples.shape[1]} channels; only mono and stereo are supported")
    check_input(samples, int(rate), path, offset=start)
    return NativeAudio(samples, int(rate), info.subtype, info.format, path)


def output_layout(source: NativeAudio, format: str | None = None, subtype: str | None = None,
                  bit_depth: int | str | None = None) -> tuple[str, str]:
    """(format, subtype) for an edited copy of `source`: the input's own by default; lossy inputs -> float WAV.

    `bit_depth` may be 16, 24, 32 (int) or "32f"/"float"; `subtype` names a libsndfile subtype directly."""
    if subtype is None and bit_depth is not None:
        subtype = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "32f": "FLOAT", "float": "FLOAT",
                   "64f": "DOUBLE"}.get(str(bit_depth).lower())
        if subtype is None:
            raise AudioFileError(f"unsupported bit depth {bit_depth!r}: use 16, 24, 32 or 32f")
    fmt = (format or (source.format if source.lossless else "WAV")).upper()
    if subtype is None:
        subtype = source.subtype if source.lossless else "FLOAT"
        if fmt == "FLAC" and subtype in ("FLOAT", "DOUBLE", "PCM_32"):
            subtype = "PCM_24"  # FLAC has no float or 32-bit: the closest lossless integer depth
        if fmt == "OGG":
            subtype = "VORBIS"
    if not sf.check_format(fmt, subtype):
        raise AudioFileError(f"format {fmt} cannot hold subtype {subtype}")
    return fmt, subtype


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse early (before any rendering) to overwrite an existing file or write into a missing folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise AudioFileError(f"{path} already exists; choose another name or allow overwriting")
    if not path.parent.exists():
        raise AudioFileError(f"output folder {path.parent} does not exist")
    return path


def write_native(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, format: str, subtype: str,
                 overwrite: bool = False) -> Path:
    """Write [frames, channels] samples already in the subtype's container type; temp file + rename, so a crash or
    error never leaves a partial file under `path` nor touches an existing one unless `overwrite`."""
    path = check_output_path(path, overwrite)
    if samples.dtype != container_dtype(subtype) and container_dtype(subtype).kind != "f":
        raise AudioFileError(f"internal: samples of type {samples.dtype} do not match subtype {subtype}")
    check_output(samples)
    remove_stale_temps(path)
    tmp = reserve_temp(path)
    try:
        sf.write(str(tmp), samples, int(sample_rate), subtype=subtype, format=format)
        try:
            publish(tmp, path, overwrite)
        except FileExistsError:
            raise AudioFileError(f"{path} already exists; choose another name or allow overwriting") from None
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"cannot write {path}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
