"""Writing what a `msanii-render` subcommand rendered: new clips as float audio, edits from their native samples."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.audio_io import AudioIOError, WriteResult, float_to_samples, resample, write_audio, write_native
from engine.cli.options import output_format
from engine.finite import check_output
from engine.render import RenderResult
from engine.tasks.finish import EditResult

EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "AIFF": "aiff"}


def default_out_path(task: str, seed, fmt: str) -> Path:
    """A name that does not exist yet: msanii-TASK-seedN.wav, then -2, -3, ..."""
    stem = f"msanii-{task}" + (f"-seed{seed}" if seed is not None else "")
    path = Path(f"{stem}.{fmt}")
    n = 2
    while path.exists():
        path, n = Path(f"{stem}-{n}.{fmt}"), n + 1
    return path


def write_result(result: RenderResult, args: argparse.Namespace) -> WriteResult:
    """Resample to the requested rate and write the file."""
    rate = args.rate or result.info.get("input_sample_rate") or result.sample_rate
    audio = result.audio
    if rate != result.sample_rate:
        seconds = result.info.get("seconds_requested")
        length = round(seconds * rate) if seconds else round(audio.shape[-1] * rate / result.sample_rate)
        audio = resample(audio, result.sample_rate, rate, length)
    fmt = output_format(args)
    out = args.out or default_out_path(args.task, result.info.get("seed"), fmt)
    return write_audio(out, audio, rate, format=fmt, bit_depth=args.bit_depth, overwrite=args.overwrite)


def write_edit(result: EditResult, args: argparse.Namespace) -> WriteResult:
    """An edit written from its native samples (bit-identical outside the edits), unless another rate is asked
    for: then everything is resampled."""
    ext = EXTENSIONS.get(result.format, "wav")
    out = args.out or default_out_path(args.task, result.info.get("seed"), ext)
    if args.rate and args.rate != result.sample_rate:
        audio = resample(result.audio, result.sample_rate, args.rate)
        check_output(audio)  # before the clip, which would turn an infinity into a full-scale sample
        samples = float_to_samples(np.clip(audio, -1.0, 1.0).T, result.subtype)
        path = write_native(out, samples, args.rate, result.format, result.subtype, args.overwrite)
        return WriteResult(path, False, float(np.abs(audio).max()), 0.0, result.format, result.subtype, args.rate)
    try:
        return result.write(out, overwrite=args.overwrite)
    except AudioIOError as exc:
        if "exists" in str(exc):
            raise FileExistsError(str(exc)) from None
        raise
