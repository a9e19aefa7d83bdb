"""Boundary discontinuity measure: how much a seam stands out from the music around it.

At each seam we compute two statistics and compare them with the same statistics at random points of a
reference (the user's original audio, or the loop itself for a loop's wrap seam):

- sample step: the largest |x[n] - x[n-1]| right at the seam, relative to the RMS sample-to-sample change over the
  3 ms on the busier side of it. A click is a step far larger than the signal's local sample-to-sample change.
- spectral flux: log-spectral distance (dB, RMS over bins) between the Hann-windowed spans just before and just
  after the seam (46 ms each). A jump in timbre, level or phase coherence shows up here even without a click.

Each is reported as a ratio to the reference median and as a percentile among the reference points: a seam that
sounds like the music around it sits near the 50th percentile; a click or a hard cut lands above the 99th.
Input audio is float [channels, samples] (numpy); channels are measured separately and the worst is kept.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

FLUX_SECONDS = 2048 / 44_100
STEP_SECONDS = 128 / 44_100


@dataclass(frozen=True)
class SeamScore:
    position: int
    step: float
    flux_db: float
    step_ratio: float
    flux_ratio: float
    step_percentile: float
    flux_percentile: float


@dataclass(frozen=True)
class BoundaryReport:
    seams: list[SeamScore]
    reference_points: int
    reference_step_median: float
    reference_flux_median: float

    @property
    def worst_step_percentile(self) -> float:
        return max((s.step_percentile for s in self.seams), default=0.0)

    @property
    def worst_flux_percentile(self) -> float:
        return max((s.flux_percentile for s in self.seams), default=0.0)

    @property
    def worst_step_ratio(self) -> float:
        return max((s.step_ratio for s in self.seams), default=0.0)

    @property
    def worst_flux_ratio(self) -> float:
        return max((s.flux_ratio for s in self.seams), default=0.0)

    def to_dict(self) -> dict:
        return {"seams": [asdict(s) for s in self.seams], "reference_points": self.reference_points,
                "reference_step_median": self.reference_step_median,
                "reference_flux_median": self.reference_flux_median,
                "worst_step_ratio": self.worst_step_ratio, "worst_flux_ratio": self.worst_flux_ratio,
                "worst_step_percentile": self.worst_step_percentile,
                "worst_flux_percentile": self.worst_flux_percentile}


def _spans(sample_rate: int) -> tuple[int, int]:
    return max(4, int(round(STEP_SECONDS * sample_rate))), max(64, int(round(FLUX_SECONDS * sample_rate)))


def sample_step(audio: np.ndarray, position: int, span: int) -> float:
    """Step contrast at `position`: the largest |x[n] - x[n-1]| for the few n next to the seam, divided by the
    larger of the RMS sample-to-sample changes over the `span` samples before and after it; worst channel.
    audio [C, N].

    Normalising by the busier side makes it a click detector: new material that is simply brighter or noisier
    than the original raises the denominator with the numerator; a discontinuity raises only the numerator."""
    n = audio.shape[-1]
    lo, hi = max(1, position - span), min(n, position + span)
    if hi - lo < 8:
        return 0.0
    diffs = np.abs(np.diff(audio[..., lo - 1:hi].astype(np.float64), axis=-1))  # diffs[..., j] = |x[lo+j]-x[lo+j-1]|
    at = position - lo
    seam = slice(max(0, at - 2), min(diffs.shape[-1], at + 2))
    before, after = diffs[..., :max(1, at - 2)], diffs[..., min(diffs.shape[-1] - 1, at + 2):]
    local = np.maximum(np.sqrt((before ** 2).mean(axis=-1)), np.sqrt((after ** 2).mean(axis=-1))).clip(min=1e-9)
    return float((diffs[..., seam].max(axis=-1) / local).max())


def spectral_flux_db(audio: np.ndarray, position: int, window: int, floor_db: float = -100.0) -> float:
    """RMS over bins of the dB difference between the windows [p-W, p) and [p, p+W); worst channel.

    Spans running off the signal are zero-padded. The floor (relative to the louder span's peak bin) keeps silent
    bins from dominating."""
    n = audio.shape[-1]
    hann = np.hanning(window)

    def span(lo: int) -> np.ndarray:
        out = np.zeros(audio.shape[:-1] + (window,))
        a, b = max(0, lo), min(n, lo + window)
        if b > a:
            out[..., a - lo:b - lo] = audio[..., a:b]
        return np.abs(np.fft.rfft(out * hann, axis=-1))

    before, after = span(position - window), span(position)
    peak = np.maximum(before.max(axis=-1, keepdims=True), after.max(axis=-1, keepdims=True)).clip(min=1e-12)
    floor = peak * 10 ** (floor_db / 20)
    db_before = 20 * np.log10(np.maximum(before, floor))
    db_after = 20 * np.log10(np.maximum(after, floor))
    return float(np.sqrt(((db_after - db_before) ** 2).mean(axis=-1)).max())


def measure_boundaries(audio: np.ndarray, seams: list[int], sample_rate: int,
                       reference: np.ndarray | list[np.ndarray] | None = None, points: int = 256,
                       seed: int = 0) -> BoundaryReport:
    """Score each seam of `audio` [C, N] against `points` random points of `reference` [C, M] (default: `audio`).

    `reference` may be a list (e.g. the original and the new material): points are shared equally among those
    long enough, so a seam is compared with the texture on both of its sides - new material that is simply
    noisier than the original does not count as a click. Reference points keep a flux window's distance from
    each reference's ends so they measure music, not edges."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None]
    refs = [audio] if reference is None else (reference if isinstance(reference, list) else [reference])
    refs = [np.asarray(r, dtype=np.float64)[None] if np.ndim(r) == 1 else np.asarray(r, dtype=np.float64)
            for r in refs]
    step_span, window = _spans(sample_rate)
    refs = [r for r in refs if r.shape[-1] > 2 * window + 1]
    if not refs:
        raise ValueError(f"reference audio too short for the boundary measure: need more than "
                         f"{2 * window / sample_rate:.3f} s")
    rng = np.random.default_rng(seed)
    ref_step, ref_flux = [], []
    for i, ref in enumerate(refs):
        share = points // len(refs) + (1 if i < points % len(refs) else 0)
        for p in rng.integers(window, ref.shape[-1] - window, size=share):
            ref_step.append(sample_step(ref, int(p), step_span))
            ref_flux.append(spectral_flux_db(ref, int(p), window))
    ref_step, ref_flux = np.array(ref_step), np.array(ref_flux)
    step_med = float(np.median(ref_step))
    flux_med = float(np.median(ref_flux))
    scores = []
    for p in seams:
        step = sample_step(audio, int(p), step_span)
        flux = spectral_flux_db(audio, int(p), window)
        scores.append(SeamScore(
            position=int(p), step=step, flux_db=flux,
            step_ratio=step / max(step_med, 1e-12), flux_ratio=flux / max(flux_med, 1e-12),
            step_percentile=float((ref_step < step).mean() * 100), flux_percentile=float((ref_flux < flux).mean() * 100),
        ))
    return BoundaryReport(scores, points, step_med, flux_med)


def loop_wrap_audio(loop: np.ndarray, context: int) -> tuple[np.ndarray, int]:
    """The loop's end followed by its start ([C, 2*context]) and the wrap seam's index, for `measure_boundaries`."""
    context = min(context, loop.shape[-1])
    return np.concatenate([loop[..., -context:], loop[..., :context]], axis=-1), context


def seam_report(audio: np.ndarray, seams: Sequence[int], rate: int, reference: object) -> dict:
    """`measure_boundaries(...).to_dict()`, or why it was skipped (a clip too short for the measure's reference
    statistics): a measure that cannot be taken never fails the render it describes."""
    try:
        return measure_boundaries(audio, list(seams), rate, reference=reference).to_dict()
    except ValueError as exc:
        return {"skipped": str(exc)}
