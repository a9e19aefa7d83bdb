"""The beat grid a beat-conditioned U-Net follows: per-frame beat and bar phase features.

A U-Net trained with beat conditioning (training: `--beat-conditioning`) gets, beside the noisy log-mel, a feature
map [BEAT_FEATURES, frames] built from where each mel frame sits in the music's beat and bar: sin/cos of the beat
phase, of twice the beat phase (eighth notes) and of the bar phase. Training builds it from the beat times of each
piece (its MIDI); inference builds it from a tempo (`tempo_grid`), so a render locks to the host's BPM.
All zeros is "no grid" (the model was also trained that way), what a bundle without conditioning never sees.

Shapes: positions [frames] (float beats / bars since the start), features [BEAT_FEATURES, frames] float32.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

BEAT_FEATURES = 6
MAX_GUIDANCE = 20.0


def beat_features(beat_position: np.ndarray, bar_position: np.ndarray) -> np.ndarray:
    """Fractional beat and bar counts per frame [frames] -> features [BEAT_FEATURES, frames] (float32)."""
    beat = 2 * np.pi * np.asarray(beat_position, dtype=np.float64)
    bar = 2 * np.pi * np.asarray(bar_position, dtype=np.float64)
    return np.stack([np.sin(beat), np.cos(beat), np.sin(2 * beat), np.cos(2 * beat), np.sin(bar), np.cos(bar)]
                    ).astype(np.float32)


def _count_at(times: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """How many marks (sorted event times, seconds) have passed at `times`, fractional, extrapolated linearly with
    the first/last interval outside the marks (index 0 at marks[0])."""
    if marks.size == 0:
        raise ValueError("a beat grid needs at least one mark")
    if marks.size == 1:  # one mark: no tempo known; treat as one per second
        return times - marks[0]
    index = np.arange(marks.size, dtype=np.float64)
    count = np.interp(times, marks, index)
    before, after = times < marks[0], times > marks[-1]
    count[before] = (times[before] - marks[0]) / (marks[1] - marks[0])
    count[after] = index[-1] + (times[after] - marks[-1]) / (marks[-1] - marks[-2])
    return count


def grid_positions(frame_times: np.ndarray, beats: np.ndarray, downbeats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beat, bar) positions at `frame_times` (seconds) from a piece's beat and downbeat times (seconds)."""
    times = np.asarray(frame_times, dtype=np.float64)
    beat = _count_at(times, np.asarray(beats, dtype=np.float64))
    bars = np.asarray(downbeats, dtype=np.float64)
    bar = _count_at(times, bars) if bars.size >= 2 else beat / 4
    return beat, bar


def counting_unit(numerator: int, denominator: int) -> tuple[float, float]:
    """(beat length in quarter notes, beats per bar) of a time signature: the denominator's note, except in
    compound metres (6/8, 9/8, 12/8, ...) where the beat is a dotted quarter."""
    if denominator == 8 and numerator % 3 == 0 and numerator > 3:
        return 1.5, numerator / 3
    return 4.0 / denominator, float(numerator)


def check_guidance(value: Any, name: str = "beat guidance") -> float:
    """A beat-guidance scale (a number from 0 to MAX_GUIDANCE) as float, else ValueError naming the problem."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_GUIDANCE:
        raise ValueError(f"{name} must be a number from 0 to {MAX_GUIDANCE:g} (1: plain conditioning), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BeatSettings:
    """The manifest's "beat" object: the U-Net's beat-grid width and the tempo (4/4) a render uses when a
    request names none; `trained_bpm` the (min, max) tempo of its training data, where recorded; `guidance` the
    beat-guidance scale a render uses when a request names none (1: the grid as the model takes it; above 1:
    classifier-free guidance against the no-grid prediction, which the model learned from its dropped grids);
    `guidance_from` the share of the noise schedule where guidance applies, counted from the noisy end: steps at
    timesteps t >= guidance_from * T are guided, the rest plain (0: every step). Rhythm is laid down while the
    clip is still mostly noise; guiding the late steps too only hardens the attacks (bench/RESULTS.md).
    `tempo_prior`: the training pieces' (BPM, beats per bar, seconds), where recorded; a generation that names no
    tempo draws one of them by its seed, weighted by length (`drawn_tempo`), instead of `default_bpm`. The model
    ties style to tempo (slow: chorale-like, ~100 BPM: pop), so one fixed tempo gives one style; drawn tempos give
    the corpus's mix (bench/RESULTS.md, "Tempo drawn from the corpus")."""
    features: int
    default_bpm: float = 100.0
    trained_bpm: tuple[float, float] | None = None
    guidance: float = 1.0
    guidance_from: float = 0.0
    tempo_prior: tuple[tuple[float, int, float], ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> "BeatSettings":
        """Parse the manifest's beat object (ValueError naming the problem)."""
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object with 'features' and 'default_bpm'")
        unknown = sorted(set(data) - {"features", "default_bpm", "trained_bpm", "guidance", "guidance_from",
                                      "tempo_prior"})
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        features = data.get("features")
        if features != BEAT_FEATURES:
            raise ValueError(f"'features' must be {BEAT_FEATURES} (this engine's beat grid), got {features!r}")
        bpm = data.get("default_bpm", 100.0)
        if not isinstance(bpm, (int, float)) or isinstance(bpm, bool) or not 1.0 <= bpm <= 999.0:
            raise ValueError(f"'default_bpm' must be a number from 1 to 999, got {bpm!r}")
        trained = data.get("trained_bpm")
        if trained is not None and not (isinstance(trained, list) and len(trained) == 2
                                        and all(isinstance(v, (int, float)) for v in trained)):
            raise ValueError(f"'trained_bpm' must be [min, max], got {trained!r}")
        guidance = check_guidance(data.get("guidance", 1.0), "'guidance'")
        start = data.get("guidance_from", 0.0)
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0.0 <= start < 1.0:
            raise ValueError(f"'guidance_from' must be a number from 0 to below 1, got {start!r}")
        return cls(features, float(bpm), tuple(float(v) for v in trained) if trained else None, guidance,
                   float(start), parse_tempo_prior(data.get("tempo_prior", [])))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"features": self.features, "default_bpm": self.default_bpm}
        if self.trained_bpm is not None:
            data["trained_bpm"] = list(self.trained_bpm)
        if self.guidance != 1.0:
            data["guidance"] = self.guidance
        if self.guidance_from:
            data["guidance_from"] = self.guidance_from
        if self.tempo_prior:
            data["tempo_prior"] = [list(entry) for entry in self.tempo_prior]
        return data

    def drawn_tempo(self, seed: int) -> tuple[float, int] | None:
        """(BPM, beats per bar) of one training piece, drawn by `seed` with the pieces weighted by their length;
        None without a tempo prior. The same seed draws the same piece on every machine (random.Random)."""
        if not self.tempo_prior:
            return None
        bpm, per_bar, _ = random.Random(seed).choices(self.tempo_prior, weights=[e[2] for e in self.tempo_prior])[0]
        return bpm, per_bar


def parse_tempo_prior(entries: Any) -> tuple[tuple[float, int, float], ...]:
    """The manifest's "tempo_prior" ([[BPM, beats per bar, seconds], ...]) checked, as tuples (ValueError naming
    the first bad entry)."""
    if not isinstance(entries, list):
        raise ValueError(f"'tempo_prior' must be a list of [BPM, beats per bar, seconds], got {entries!r}")
    prior = []
    for i, entry in enumerate(entries):
        ok = isinstance(entry, list) and len(entry) == 3 and not any(isinstance(v, bool) for v in entry)
        if ok:
            bpm, per_bar, seconds = entry
            ok = (isinstance(bpm, (int, float)) and 1.0 <= bpm <= 999.0 and isinstance(per_bar, int)
                  and 1 <= per_bar <= 64 and isinstance(seconds, (int, float)) and 0 < seconds < float("inf"))
        if not ok:
            raise ValueError(f"'tempo_prior' entry {i} must be [BPM 1-999, beats per bar 1-64, seconds > 0], "
                             f"got {entry!r}")
        prior.append((float(bpm), int(per_bar), float(seconds)))
    return tuple(prior)


def tempo_grid(frames: int, frame_rate: float, bpm: float, numerator: int = 4, denominator: int = 4,
               origin_s: float = 0.0, offset_s: float = 0.0) -> np.ndarray:
    """Features [BEAT_FEATURES, frames] of a steady tempo (`bpm` quarter notes per minute, bar 1 beat 1 at
    `origin_s` in the file) for frames starting `offset_s` into the file."""
    if not bpm > 0:
        raise ValueError(f"tempo must be > 0 BPM, got {bpm}")
    unit, per_bar = counting_unit(numerator, denominator)
    times = offset_s + np.arange(frames, dtype=np.float64) / frame_rate - origin_s
    beats = times * bpm / 60.0 / unit
    return beat_features(beats, beats / per_bar)
