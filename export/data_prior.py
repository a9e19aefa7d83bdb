"""Measure a bundle's data prior (engine.prior): the per-mel-bin mean and variance of audio in U-Net space.

    python -m export.data_prior BUNDLE --data DIR [--error E] [--overwrite]   # add it to an existing bundle
    msanii-export ... --prior-data DIR                                        # or measure it at export

The audio should be the U-Net's training data (what the prior stands for). The statistics are taken over every frame
of every file, through the bundle's own log-mel and scaler. Adding a prior rewrites only manifest.json, atomically
(temporary file, then rename); an existing prior is kept unless --overwrite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

from engine.bundle import MANIFEST, BundleError, load_bundle
from engine.dsp import SpectrogramConfig, log_mel
from engine.dsp.scaler import ScalerStats, normalise
from engine.prior import DEFAULT_PRIOR_ERROR, DataPrior
from export.bundle_writer import write_manifest
from training.data.audio_folder import find_audio_files, load_audio
from training.data.errors import DataError


def measure_prior(audio_dir: str | Path, spectrogram: SpectrogramConfig, stats: ScalerStats, channels: int = 2,
                  error: float = DEFAULT_PRIOR_ERROR, log: Callable[[str], None] | None = None) -> DataPrior:
    """The DataPrior of the audio files under `audio_dir` for a U-Net with this spectrogram and scaler.
    Raises DataError when the folder holds no decodable audio."""
    files = find_audio_files(Path(audio_dir))
    if not files:
        raise DataError(f"{audio_dir}: no audio files to measure a prior from")
    total = torch.zeros(spectrogram.n_mels, dtype=torch.float64)
    squares = torch.zeros_like(total)
    frames = 0
    for path in files:
        audio = torch.from_numpy(load_audio(path, spectrogram.sample_rate, channels))
        x = normalise(log_mel(audio, spectrogram), stats).double()  # [C, n_mels, T]
        x = x.transpose(0, 1).reshape(spectrogram.n_mels, -1)
        total += x.sum(1)
        squares += (x * x).sum(1)
        frames += x.shape[1]
    mean = total / frames
    var = (squares / frames - mean * mean).clamp_min(1e-6)
    if log:
        log(f"prior from {len(files)} files, {frames} frames: mean {float(mean.min()):+.3f} .. "
            f"{float(mean.max()):+.3f}, sd {float(var.sqrt().min()):.3f} .. {float(var.sqrt().max()):.3f}")
    return DataPrior(tuple(mean.tolist()), tuple(var.tolist()), error)


def add_prior_to_bundle(bundle_dir: str | Path, audio_dir: str | Path, error: float = DEFAULT_PRIOR_ERROR,
                        overwrite: bool = False, log: Callable[[str], None] | None = None) -> DataPrior:
    """Measure the prior for the bundle's U-Net from `audio_dir` and write it into its manifest (atomically)."""
    bundle = load_bundle(bundle_dir)
    if bundle.diffusion.prediction_type != "epsilon":
        raise BundleError(f"{bundle_dir}: a {bundle.diffusion.prediction_type} model needs no data prior "
                          "(engine.prior says why)")
    if bundle.diffusion.prior is not None and not overwrite:
        raise FileExistsError(f"{bundle_dir}: the manifest already has a data prior; pass --overwrite to replace it")
    prior = measure_prior(audio_dir, bundle.spectrogram, bundle.unet_stats, bundle.channels, error, log)
    manifest = dict(bundle.manifest)
    manifest["diffusion"] = {**manifest["diffusion"], "prior": prior.to_dict()}
    write_manifest(bundle.path, manifest)
    load_bundle(bundle.path)  # what we wrote must read back
    return prior


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.data_prior", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle folder whose manifest gets the prior")
    parser.add_argument("--data", required=True, help="folder of the U-Net's training audio")
    parser.add_argument("--error", type=float, default=DEFAULT_PRIOR_ERROR,
                        help=f"eps error variance that weighs the model's x0 (default {DEFAULT_PRIOR_ERROR})")
    parser.add_argument("--overwrite", action="store_true", help="replace a prior the manifest already has")
    args = parser.parse_args(argv)
    try:
        add_prior_to_bundle(args.bundle, args.data, args.error, args.overwrite,
                            log=lambda msg: print(msg, file=sys.stderr))
    except (BundleError, DataError, FileExistsError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"data prior written to {Path(args.bundle) / MANIFEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
