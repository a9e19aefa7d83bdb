"""Does a beat-conditioned bundle play to the tempo it is given? Generated clips at several tempos against real
held-out audio on its own beat grid (the pieces' `.beats.json` sidecars).

    python -m bench.tempo_follow --bundle B [--heldout data/piano/heldout] [--tempos 80 100 120] [--seeds 0 1]
                                 [--guidance 1 2 3]

`--guidance`: one table per beat-guidance scale (engine.regions.Tempo.guidance; default: the bundle's own).

Per clip, from the onset envelope (bench.musicality.onset_envelope):
- "on/off-grid onsets": mean onset strength within a frame of the eighth-note grid it should follow (beats and
  half beats) over the same at the sixteenths between them (1: onsets land anywhere; real pieces on their own
  grid read well above 1);
- "tempo found": the tempo of the envelope's autocorrelation peak between 40 and 200 BPM, folded onto the
  requested tempo's octave (x2 / /2), so a clip that plays eighth notes at the right tempo counts as right;
- beat clarity as in the quality report.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.musicality import _mono, beat_clarity, onset_envelope
from engine.dsp import SpectrogramConfig, stft_magnitude


def _envelope(audio: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    return onset_envelope(stft_magnitude(_mono(audio), cfg).double().numpy())


def on_off_grid_ratio(envelope: np.ndarray, beat_frames: np.ndarray, beat_length: float) -> float:
    """Mean of the envelope's max within +-1 frame of each beat and half beat over the same a quarter beat later
    (`beat_length` in frames)."""
    def strength(frames: np.ndarray) -> float:
        idx = np.round(frames).astype(int)
        idx = idx[(idx >= 1) & (idx < envelope.size - 1)]
        if idx.size == 0:
            return float("nan")
        return float(np.mean([envelope[i - 1:i + 2].max() for i in idx]))
    eighths = np.concatenate([beat_frames, beat_frames + beat_length / 2])
    floor = 1e-3 * float(envelope.mean()) + 1e-12  # a clean click track has no onset at all off its grid
    return (strength(eighths) + floor) / (strength(eighths + beat_length / 4) + floor)


def tempo_found(envelope: np.ndarray, frame_rate: float, requested: float) -> float:
    """Autocorrelation-peak tempo (40-200 BPM) folded by octaves to the one nearest `requested`."""
    x = envelope - envelope.mean()
    ac = np.correlate(x, x, mode="full")[x.size - 1:]
    lo, hi = int(frame_rate * 60 / 200), min(int(frame_rate * 60 / 40), x.size - 1)
    lag = lo + int(np.argmax(ac[lo:hi + 1]))
    bpm = 60 * frame_rate / lag
    while bpm < requested / np.sqrt(2):
        bpm *= 2
    while bpm > requested * np.sqrt(2):
        bpm /= 2
    return float(bpm)


def clip_row(audio: np.ndarray, cfg: SpectrogramConfig, beats_s: np.ndarray, bpm: float) -> dict:
    rate = cfg.sample_rate / cfg.hop_length
    envelope = _envelope(audio, cfg)
    beat_s = 60.0 / bpm
    return {"ratio": on_off_grid_ratio(envelope, beats_s * rate, beat_s * rate),
            "tempo": tempo_found(envelope, rate, bpm), "clarity": beat_clarity(envelope, rate)}


def real_rows(heldout: Path, cfg: SpectrogramConfig, seconds: float, count: int) -> list[dict]:
    """The held-out pieces that have a beat sidecar, first `seconds` each, on their own grid."""
    from training.data.beats import read_sidecar  # bench may read training data; the engine never does

    rows = []
    for wav in sorted(heldout.glob("*.wav"))[:count]:
        grid = read_sidecar(wav)
        if grid is None:
            continue
        audio, rate = sf.read(wav, dtype="float32", frames=int(seconds * cfg.sample_rate), always_2d=True)
        beats = grid[0][grid[0] < seconds]
        bpm = 60.0 / float(np.median(np.diff(grid[0])))
        rows.append({"name": wav.stem, "bpm": bpm, **clip_row(audio.T, cfg, beats, bpm)})
    return rows


def generated_rows(engine, tempos: list[float], seeds: list[int], seconds: float,
                   guidance: float | None = None) -> list[dict]:
    from engine.regions import Tempo
    from engine.tasks.generate import generate

    cfg = engine.bundle.spectrogram
    rows = []
    for bpm in tempos:
        beats = np.arange(0.0, seconds, 60.0 / bpm)
        for seed in seeds:
            audio = generate(engine, seconds, seed=seed, tempo=Tempo(float(bpm), guidance=guidance)).audio
            rows.append({"name": f"seed {seed}", "bpm": float(bpm), **clip_row(audio, cfg, beats, bpm)})
    return rows


def table(rows: list[dict], label: str) -> str:
    lines = [f"| {label} | requested BPM | tempo found | on/off-grid onsets | beat clarity |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['bpm']:.1f} | {r['tempo']:.1f} | {r['ratio']:.2f} | {r['clarity']:.3f} |")
    ratios = [r["ratio"] for r in rows if np.isfinite(r["ratio"])]
    within = np.mean([abs(r["tempo"] / r["bpm"] - 1) < 0.04 for r in rows]) if rows else float("nan")
    lines.append(f"| **mean** | | {100 * within:.0f} % within 4 % | {np.mean(ratios) if ratios else float('nan'):.2f}"
                 f" | {np.mean([r['clarity'] for r in rows]) if rows else float('nan'):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from engine.api import Engine
    from engine.bundle import BundleError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, help="held-out audio with .beats.json sidecars (the real ceiling)")
    parser.add_argument("--tempos", type=float, nargs="+", default=[80.0, 100.0, 120.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=10, help="held-out pieces read")
    parser.add_argument("--guidance", type=float, nargs="+", default=[None], metavar="W",
                        help="beat-guidance scales to render with, a table each (default: the bundle's)")
    args = parser.parse_args(argv)
    try:
        engine = Engine.load(args.bundle)
    except BundleError as exc:
        parser.error(str(exc))
    if engine.bundle.beat is None:
        parser.error(f"{args.bundle} has no beat conditioning (manifest 'beat'): it follows no tempo")
    for w in args.guidance:
        label = f"{engine.name} generated" + ("" if w is None else f", beat guidance {w:g}")
        try:
            print(table(generated_rows(engine, args.tempos, args.seeds, args.seconds, w), label))
        except ValueError as exc:  # RegionError: a scale out of range, a tempo out of range
            parser.error(str(exc))
        print()
    if args.heldout:
        print(table(real_rows(args.heldout, engine.bundle.spectrogram, args.seconds, args.clips), "held-out (real)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
