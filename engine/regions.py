"""Time regions for the region tasks: seconds or bars/beats, converted to samples once and validated here.

A position is either seconds (a float) or a musical position `BarBeat(bar, beat)` read against a `Tempo`.
Conventions (as in Ableton, Logic, Reaper, Cubase): bars and beats are 1-based (bar 1 beat 1 is the start of the
file, or `Tempo.origin_s` if the music starts later); the BPM counts quarter notes per minute; a beat is one note
of the time signature's denominator (a 6/8 bar has six eighth-note beats). Beats may be fractional ("3:2.5").

Text form (CLI): seconds "12.5" or "12.5s"; bars "5:1" (bar 5 beat 1), "5:2.5", or "5" with a trailing colon-free
"b" suffix "5b" (bar 5 beat 1). A region is "START-END", e.g. "12.5-16" or "5:1-9:1". Lengths (outpaint, loop):
"8" / "8s" seconds, "4b" bars, "2:0" = 2 bars and 0 beats.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence, Union

from engine.beat_grid import check_guidance


class RegionError(ValueError):
    """A region that cannot be edited (outside the file, empty, reversed, overlapping...); the message says why."""


@dataclass(frozen=True)
class Tempo:
    """A constant tempo: `bpm` quarter notes per minute, time signature `numerator`/`denominator`, and where bar 1
    beat 1 falls in the file (`origin_s`, seconds). `guidance`: how strictly a beat-conditioned bundle holds this
    grid (engine.api.Engine.denoiser_with_beat; 1 plain, 2-4 tighter, None: the bundle's default)."""
    bpm: float
    numerator: int = 4
    denominator: int = 4
    origin_s: float = 0.0
    guidance: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bpm) and 1.0 <= self.bpm <= 999.0):
            raise RegionError(f"BPM must be between 1 and 999, got {self.bpm}")
        if self.numerator < 1 or self.numerator > 64:
            raise RegionError(f"time signature numerator must be 1..64, got {self.numerator}")
        if self.denominator not in (1, 2, 4, 8, 16, 32):
            raise RegionError(f"time signature denominator must be a power of two (1..32), got {self.denominator}")
        if not math.isfinite(self.origin_s) or self.origin_s < 0:
            raise RegionError(f"tempo origin must be >= 0 seconds, got {self.origin_s}")
        if self.guidance is not None:
            try:
                check_guidance(self.guidance)
            except ValueError as exc:
                raise RegionError(str(exc)) from None

    @property
    def beat_seconds(self) -> float:
        """Length of one beat (one denominator note) in seconds."""
        return 60.0 / self.bpm * 4.0 / self.denominator

    @property
    def bar_seconds(self) -> float:
        return self.beat_seconds * self.numerator

    @classmethod
    def parse(cls, bpm: float, signature: str = "4/4", origin_s: float = 0.0,
              guidance: float | None = None) -> "Tempo":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", signature)
        if not match:
            raise RegionError(f"time signature {signature!r} is not of the form N/D, e.g. 4/4 or 6/8")
        return cls(float(bpm), int(match.group(1)), int(match.group(2)), float(origin_s), guidance)


@dataclass(frozen=True)
class BarBeat:
    """A musical position: 1-based bar and (fractional) 1-based beat."""
    bar: int
    beat: float = 1.0

    def seconds(self, tempo: Tempo) -> float:
        if self.bar < 1:
            raise RegionError(f"bars count from 1, got bar {self.bar}")
        if not (1.0 <= self.beat < tempo.numerator + 1):
            raise RegionError(f"beat {self.beat} is outside a {tempo.numerator}/{tempo.denominator} bar "
                              f"(beats 1..{tempo.numerator}, fractions allowed)")
        return tempo.origin_s + (self.bar - 1) * tempo.bar_seconds + (self.beat - 1) * tempo.beat_seconds


@dataclass(frozen=True)
class BarsLength:
    """A musical duration: whole bars plus beats."""
    bars: float
    beats: float = 0.0

    def seconds(self, tempo: Tempo) -> float:
        return self.bars * tempo.bar_seconds + self.beats * tempo.beat_seconds


Position = Union[float, int, BarBeat]
Length = Union[float, int, BarsLength]


@dataclass(frozen=True)
class Region:
    """An edit region as the user gave it (seconds or musical positions)."""
    start: Position
    end: Position


@dataclass(frozen=True)
class SampleRegion:
    """A validated region in samples of a specific file: [start, end)."""
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def seconds(self, sample_rate: int) -> tuple[float, float]:
        return self.start / sample_rate, self.end / sample_rate


def position_seconds(position: Position, tempo: Tempo | None) -> float:
    if isinstance(position, BarBeat):
        if tempo is None:
            raise RegionError(f"position bar {position.bar} beat {position.beat} needs a tempo (BPM)")
        return position.seconds(tempo)
    value = float(position)
    if not math.isfinite(value):
        raise RegionError(f"position must be a finite number of seconds, got {position}")
    return value


def length_seconds(length: Length, tempo: Tempo | None) -> float:
    if isinstance(length, BarsLength):
        if tempo is None:
            raise RegionError("a length in bars needs a tempo (BPM)")
        value = length.seconds(tempo)
    else:
        value = float(length)
    if not math.isfinite(value) or value < 0:
        raise RegionError(f"length must be a finite, non-negative duration, got {length}")
    return value


def to_samples(seconds: float, sample_rate: int) -> int:
    """Seconds -> nearest sample index. The one place positions become samples."""
    return int(round(seconds * sample_rate))


def resolve_regions(regions: Sequence[Region], total_samples: int, sample_rate: int, tempo: Tempo | None = None,
                    min_seconds: float = 0.01) -> list[SampleRegion]:
    """Convert regions to samples of a file with `total_samples` samples at `sample_rate` and validate them.

    Errors (RegionError): no regions; a region reversed, empty, shorter than `min_seconds`, starting before 0 or
    ending after the file; two regions overlapping. Regions that merely touch are merged. Returns them sorted.
    """
    if not regions:
        raise RegionError("no region given: name at least one region to edit")
    duration = total_samples / sample_rate
    spans = []
    for i, region in enumerate(regions, 1):
        start, end = position_seconds(region.start, tempo), position_seconds(region.end, tempo)
        label = f"region {i} ({start:.3f}s-{end:.3f}s)"
        if end < start:
            raise RegionError(f"{label} is reversed: its end comes before its start")
        if end == start:
            raise RegionError(f"{label} is empty: start and end are the same")
        if start < 0:
            raise RegionError(f"{label} starts before the beginning of the file")
        s, e = to_samples(start, sample_rate), to_samples(end, sample_rate)
        if e > total_samples:
            raise RegionError(f"{label} ends after the end of the file ({duration:.3f}s); "
                              f"use outpaint to extend a file")
        if (e - s) < min_seconds * sample_rate:
            raise RegionError(f"{label} is shorter than the minimum of {min_seconds * 1000:.0f} ms")
        spans.append((s, e, label))
    spans.sort()
    merged: list[SampleRegion] = []
    for (s, e, label), previous in zip(spans, [None] + spans[:-1]):
        if previous is not None and s < previous[1]:
            raise RegionError(f"{label} overlaps {previous[2]}: give non-overlapping regions")
        if merged and s == merged[-1].end:
            merged[-1] = SampleRegion(merged[-1].start, e)
        else:
            merged.append(SampleRegion(s, e))
    return merged


# ---- text forms (CLI and OSC) ----

RegionLike = Region | tuple | str  # what the Python API accepts for a region


def as_regions(regions: Sequence[RegionLike]) -> list[Region]:
    """Region objects from Region, (start, end) pairs (seconds or BarBeat) or "START-END" strings."""
    out = []
    for r in regions:
        if isinstance(r, Region):
            out.append(r)
        elif isinstance(r, str):
            out.append(parse_region(r))
        else:
            start, end = r
            out.append(Region(start, end))
    return out


def rendered_seconds(regions: Sequence[SampleRegion], sample_rate: int) -> float:
    """New audio a region edit renders: the regions' total length."""
    return sum(r.length for r in regions) / sample_rate


_NUMBER = r"\d+(?:\.\d*)?|\.\d+"


def parse_position(text: str) -> Position:
    """"12.5" / "12.5s" -> seconds; "5:1" / "5:2.5" / "5b" -> BarBeat."""
    t = text.strip().lower()
    if m := re.fullmatch(rf"({_NUMBER})\s*s?", t):
        return float(m.group(1))
    if m := re.fullmatch(r"(\d+)\s*:\s*(" + _NUMBER + r")", t):
        return BarBeat(int(m.group(1)), float(m.group(2)))
    if m := re.fullmatch(r"(\d+)\s*b", t):
        return BarBeat(int(m.group(1)), 1.0)
    raise RegionError(f"cannot read position {text!r}: use seconds (12.5 or 12.5s) or bar:beat (5:1, 5:2.5, 5b)")


def parse_region(text: str) -> Region:
    """"START-END" with positions as in `parse_position`, e.g. "12.5-16" or "5:1-9:1"."""
    parts = text.split("-")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise RegionError(f"cannot read region {text!r}: use START-END, e.g. 12.5-16 or 5:1-9:1")
    return Region(parse_position(parts[0]), parse_position(parts[1]))


def parse_length(text: str) -> Length:
    """"8" / "8s" -> seconds; "4b" -> 4 bars; "2:3" -> 2 bars and 3 beats."""
    t = text.strip().lower()
    if m := re.fullmatch(rf"({_NUMBER})\s*s?", t):
        return float(m.group(1))
    if m := re.fullmatch(rf"({_NUMBER})\s*b(?:ars?)?", t):
        return BarsLength(float(m.group(1)))
    if m := re.fullmatch(rf"(\d+)\s*:\s*({_NUMBER})", t):
        return BarsLength(float(m.group(1)), float(m.group(2)))
    raise RegionError(f"cannot read length {text!r}: use seconds (8 or 8s), bars (4b) or bars:beats (2:3)")


def needs_tempo(*items: object) -> bool:
    return any(isinstance(x, (BarBeat, BarsLength)) or (isinstance(x, Region) and needs_tempo(x.start, x.end))
               for x in items)
