"""Files between a DAW and the server, on the client side of `msanii-request`.

- `prepare_input`: a DAW keeps a region's audio as one file per channel (Ardour: `take%L.wav`, `take%R.wav`) and
  a region is a span of them. This stacks the channels and cuts the span, bit for bit in the files' own sample
  format, into a new file in a folder the server may read (its `--allow-input` or output folder). The session's
  files are only read; nothing existing is ever replaced.
- `write_pcm`: a finished clip as raw float32 for script hosts that cannot decode audio files (Ardour's Lua):
  a 24-byte header (`MSPCM1\\0\\0`, then little-endian int32 channels, frames, sample rate, 0) and the samples
  channel after channel (planar), resampled to the DAW's rate when asked.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from engine.audio_io import publish, resample, temp_name

PCM_MAGIC = b"MSPCM1\x00\x00"
PCM_HEADER = struct.Struct("<8siiii")
# the dtype that holds each libsndfile subtype exactly (reading int24 as int32 keeps every bit)
_EXACT_DTYPES = {"FLOAT": "float32", "DOUBLE": "float64"}
_SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "AIFF": ".aiff"}


class HandoffError(ValueError):
    """An input or hand-off file cannot be made; the message names the file and the problem."""


def _exact_dtype(subtype: str) -> str:
    return _EXACT_DTYPES.get(subtype, "int32")


def _fresh_path(folder: Path, stem: str, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1, 10_000):
        path = folder / (f"{stem}-{stamp}{suffix}" if n == 1 else f"{stem}-{stamp}-{n}{suffix}")
        if not os.path.lexists(path):
            return path
    raise HandoffError(f"too many files named {stem}-{stamp}* in {folder}")


def _publish_new(tmp: Path, path: Path) -> None:
    try:
        publish(tmp, path, overwrite=False)
    finally:
        tmp.unlink(missing_ok=True)


def prepare_input(sources: Sequence[Path], work_dir: Path, span: tuple[int, int] | None = None,
                  stem: str = "input") -> Path:
    """One file with every source's channels (in order) for samples [start, end) of `span` (all when None).

    A single source with no span is returned as it is (resolved): nothing to copy. Sources must share a sample
    rate and, when stacked, a length. The new file keeps the first source's container and sample format.
    """
    if not sources:
        raise HandoffError("no input file given")
    paths = [Path(s).expanduser().resolve() for s in sources]
    for path in paths:
        if not path.is_file():
            raise HandoffError(f"input file not found: {path}")
    if len(paths) == 1 and span is None:
        return paths[0]
    try:
        infos = [sf.info(str(p)) for p in paths]
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise HandoffError(f"cannot read input audio: {exc}") from None
    rates = {i.samplerate for i in infos}
    if len(rates) > 1:
        raise HandoffError(f"input files have different sample rates {sorted(rates)}: {', '.join(map(str, paths))}")
    frames = min(i.frames for i in infos)
    if len(paths) > 1 and any(i.frames != frames for i in infos):
        raise HandoffError("input files to stack as channels differ in length: "
                           + ", ".join(f"{p.name} {i.frames}" for p, i in zip(paths, infos)))
    start, end = span if span is not None else (0, frames)
    if not 0 <= start < end <= frames:
        raise HandoffError(f"span {start}:{end} (samples) is not inside the input's 0:{frames}")
    dtype = _exact_dtype(infos[0].subtype)
    blocks = [sf.read(str(p), start=start, stop=end, dtype=dtype, always_2d=True)[0] for p in paths]
    audio = np.concatenate(blocks, axis=1)
    work_dir = Path(work_dir).expanduser()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HandoffError(f"cannot create the work folder {work_dir}: {exc.strerror or exc}") from None
    container = infos[0].format if infos[0].format in _SUFFIXES else "WAV"  # WAVEX, RF64...: plain WAV
    path = _fresh_path(work_dir.resolve(), stem, _SUFFIXES[container])
    tmp = temp_name(path, os.getpid())
    sf.write(str(tmp), audio, infos[0].samplerate, subtype=infos[0].subtype, format=container)
    _publish_new(tmp, path)
    return path


def write_pcm(clip: Path, out: Path, rate: int | None = None) -> Path:
    """`clip` as an MSPCM1 file at `out` (refused if it exists), resampled to `rate` when it differs."""
    out = Path(out).expanduser()
    if os.path.lexists(out):
        raise HandoffError(f"{out} already exists; choose a new --pcm path")
    try:
        data, clip_rate = sf.read(str(clip), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise HandoffError(f"cannot read the rendered clip {clip}: {exc}") from None
    audio = np.ascontiguousarray(data.T)
    if rate is not None and rate != clip_rate:
        audio = resample(audio, clip_rate, rate)
        clip_rate = rate
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(out, os.getpid())
    with open(tmp, "wb") as fh:
        fh.write(PCM_HEADER.pack(PCM_MAGIC, audio.shape[0], audio.shape[1], int(clip_rate), 0))
        fh.write(audio.astype("<f4").tobytes())
    _publish_new(tmp, out)
    return out


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """An MSPCM1 file back as (float32 [channels, frames], sample rate): for tests and other hosts."""
    raw = Path(path).read_bytes()
    magic, channels, frames, rate, _ = PCM_HEADER.unpack_from(raw)
    if magic != PCM_MAGIC:
        raise HandoffError(f"{path} is not an MSPCM1 file")
    audio = np.frombuffer(raw, dtype="<f4", offset=PCM_HEADER.size).reshape(channels, frames)
    return audio.astype(np.float32), rate
