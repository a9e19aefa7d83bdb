"""Vocoders of several bundles side by side on held-out audio, beside the mel pseudo-inverse (the paper's baseline).

The quality report's vocoder table (`bench.quality_report.vocoder_section`) for any bundles, without generating:
magnitude SC, log-magnitude L1, audio SC after Griffin-Lim and the octave levels against the true STFT.

    python -m bench.vocoder_compare --bundles models/default runs/voc-frozen/bundle \
        --heldout data/piano/heldout --clips 10 --gl-iters 96 --png /tmp/vocoders.png
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from bench.quality_report import load_clips, vocoder_section
from bench.report_markdown import vocoder_table
from engine.api import Engine
from engine.bundle import BundleError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, nargs="+", required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--gl-iters", type=int, default=96)
    parser.add_argument("--png", type=Path, help="spectrograms of the first clip: original and every method")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [str(path) for path in args.bundles]
    if len(set(names)) != len(names):
        parser.error("each bundle once")
    try:
        engines = {name: Engine.load(path) for name, path in zip(names, args.bundles)}
    except BundleError as exc:
        parser.error(str(exc))
    clips = load_clips(args.heldout, args.seconds, args.clips, next(iter(engines.values())).sample_rate)
    with tempfile.TemporaryDirectory() as tmp:  # vocoder_section always draws its picture
        rows = vocoder_section(engines, clips, args.gl_iters, args.png or Path(tmp) / "vocoders.png")
    print(f"{len(clips)} clips x {args.seconds:g} s, {args.gl_iters} Griffin-Lim iterations")
    print("\n".join(vocoder_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
