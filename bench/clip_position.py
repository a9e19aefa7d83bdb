"""Middle clips against clips from anywhere in the same files: every gated measure of both.

The gates judge one clip from the middle of each real file (bench.reference.middle_clip); training draws its crops
from anywhere in a file, intros and final chords included, so a model that learned its corpus exactly plays the
second set. This measures how far the two sets sit apart on the very measures the gates use.

    python -m bench.clip_position data/piano-comp/train --crops-per-file 3
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench import musicality
from bench.gate_power import add_folder_arguments, folder_settings
from bench.reference import audio_files, middle_clip, stereo_at


def random_clips(path: Path, seconds: float, rate: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` clips [channels, samples] of `seconds` at uniformly drawn starts in the file (none if it is shorter)."""
    audio = stereo_at(path, rate)
    length = int(round(seconds * rate))
    if audio.shape[-1] < length:
        return []
    starts = rng.integers(0, audio.shape[-1] - length + 1, size=count)
    return [np.ascontiguousarray(audio[:, s:s + length]) for s in starts]


def position_table(middle: dict, anywhere: dict) -> str:
    """Markdown: each gated measure (and band share) of the two set summaries, and their difference."""
    lines = ["| measure | middle clips | clips from anywhere | difference |", "|---|---|---|---|"]
    for key in musicality.SCALAR_MEASURES:
        lines.append(f"| {key} | {middle[key]:.3f} | {anywhere[key]:.3f} | {anywhere[key] - middle[key]:+.3f} |")
    for name, a, b in zip(musicality.BAND_NAMES, middle["bands_db"], anywhere["bands_db"]):
        lines.append(f"| band {name} (dB vs total) | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_arguments(parser, "folders of real audio (e.g. a corpus' train split)")
    parser.add_argument("--crops-per-file", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = folder_settings(parser, args)
    if args.crops_per_file < 1:
        parser.error("--crops-per-file must be at least 1")
    rng = np.random.default_rng(args.seed)
    middle, anywhere = [], []
    for path in (p for folder in args.folders for p in audio_files(folder)):
        clip = middle_clip(path, args.seconds, cfg.sample_rate)
        if clip is not None:
            middle.append(musicality.clip_measures(clip, cfg))
            anywhere += [musicality.clip_measures(c, cfg)
                         for c in random_clips(path, args.seconds, cfg.sample_rate, args.crops_per_file, rng)]
    if not middle:
        parser.error(f"no file of {args.seconds:g} s or longer in {', '.join(map(str, args.folders))}")
    print(f"{len(middle)} files: one middle clip each against {len(anywhere)} clips from anywhere "
          f"({args.crops_per_file} per file, seed {args.seed}), {args.seconds:g} s each")
    print(position_table(musicality.summary_of(middle), musicality.summary_of(anywhere)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
