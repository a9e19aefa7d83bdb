"""Where does a set's log-mel frame-to-frame change (bench.musicality's `mel_change`) come from: loud or quiet cells?

Every log-mel cell pair (one band, two consecutive frames, each channel alone) is binned by its level (the louder of
the two, nats) at the quartiles of the real set's levels; each bin's mean |change| is printed for real held-out audio,
the same audio through the bundle's decoder (mel -> vocoder -> Griffin-Lim: `reconstructed`), and clips the bundle
generates. A set that is smooth only in the quietest quartile (cells ~40 dB under the loudest quartile: reverb
tails, the floor between notes) reads low on `mel_change` with onsets and sustains as sharp as real ones; a set
smooth in the loud quartiles blurs what a listener hears.

    python -m bench.mel_change_by_level --real data/piano/heldout --bundle models/default [--seeds 0 1 ...]
"""
from __future__ import annotations

import engine  # noqa: F401  (first: sets passive OpenMP waiting before torch loads)

import argparse
from pathlib import Path

import numpy as np
import torch

from engine.dsp import SpectrogramConfig, log_mel

QUANTILES = (0.25, 0.5, 0.75)


def cell_changes(clips: list[np.ndarray], cfg: SpectrogramConfig) -> tuple[np.ndarray, np.ndarray]:
    """clips: [channels, samples] each -> (level, |change|) of every consecutive-frame cell pair, flattened."""
    levels, changes = [], []
    for clip in clips:
        mel = log_mel(torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)), cfg).double().numpy()
        mel = mel.reshape(-1, mel.shape[-1])  # [channels * bands, frames]
        levels.append(np.maximum(mel[:, 1:], mel[:, :-1]).ravel())
        changes.append(np.abs(np.diff(mel, axis=1)).ravel())
    return np.concatenate(levels), np.concatenate(changes)


def change_by_level(level: np.ndarray, change: np.ndarray, edges: np.ndarray) -> list[tuple[float, float]]:
    """(mean |change|, share of cells) in each bin between consecutive `edges` (open at both ends)."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = (level >= lo) & (level < hi)
        out.append((float(change[inside].mean()) if inside.any() else float("nan"), float(inside.mean())))
    return out


def table(sets: dict[str, list[np.ndarray]], cfg: SpectrogramConfig, real: str = "real") -> str:
    """Markdown: one row per set, its overall change and its change in each quartile of `sets[real]`'s levels."""
    level, change = cell_changes(sets[real], cfg)
    edges = np.quantile(level, QUANTILES)
    head = ["quietest", *(f"{lo:+.2f}..{hi:+.2f}" for lo, hi in zip(edges, edges[1:])), "loudest"]
    lines = [f"| set | all cells | {' | '.join(head)} |", "|---" * (len(head) + 2) + "|"]
    for name, clips in sets.items():
        lv, ch = (level, change) if name == real else cell_changes(clips, cfg)
        cells = [f"{m:.3f} ({share * 100:.0f} %)" for m, share in change_by_level(lv, ch, edges)]
        lines.append(f"| {name} | {ch.mean():.3f} | {' | '.join(cells)} |")
    return "\n".join(lines) + (f"\n\nQuartile edges of the {real} set's cell levels: "
                               + ", ".join(f"{e:+.2f}" for e in edges) + " nats (log-mel, magnitude).")


def main(argv: list[str] | None = None) -> int:
    from bench.musicality import reconstruct
    from bench.quality_report import generate_clips, load_clips
    from engine.api import Engine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, required=True, help="folder of held-out audio")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    eng = Engine.load(args.bundle, device="cpu", threads=args.threads)
    real = load_clips(args.real, args.seconds, args.clips, eng.sample_rate)
    generated, _ = generate_clips(eng, args.seeds, args.seconds)
    print(table({"real": real, "reconstructed": [reconstruct(eng, c) for c in real], "generated": generated},
                eng.bundle.spectrogram))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
