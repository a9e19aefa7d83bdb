"""Render settings a client changes with `/msanii/set <key> <value...>`; each job takes a snapshot at submit time.

Keys (value types as OSC sends them):
    steps <int 1..1000>          sampler steps (default: the bundle's)
    sampler <ddim|dpmpp|sde>     sampler (default: the bundle's)
    gl_iters <int 0..1000>       Griffin-Lim iterations (default: the bundle's)
    bpm <float 20..400>          tempo for bar/beat lengths (loop bars), and, once set, the beat a tempo-following
                                 bundle plays to (generate, loop, inpaint, audio2audio; docs/architecture.md);
                                 until then a generate follows the tempo its seed draws (named in /msanii/done)
    time_signature <n> <d>       e.g. 3 4 (n 1..32, d one of 1 2 4 8 16 32)
    beat_guidance <float 0..20>  how strictly a tempo-following bundle holds the set bpm (1 plain, 2-4 tighter,
                                 at twice the model time; default: the bundle's); applies once bpm is set
    format <wav|flac>            output container (default: WAV for new clips, the input's own for edits)
    bit_depth <16|24|32>         16/24-bit integer or 32-bit float (FLAC: 16 or 24); default 24-bit for new
                                 clips, the input's own for edits
    output_dir <name>            subfolder of the output root for new clips ("" = the root)
    progress_hz <float 1..50>    most progress replies per second and job
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from bridge import protocol as p
from engine.audio_io import BIT_DEPTHS as AUDIO_BIT_DEPTHS
from engine.audio_io import FORMATS as AUDIO_FORMATS
from engine.beat_grid import MAX_GUIDANCE
from engine.regions import Tempo
from engine.samplers import SAMPLER_NAMES

FORMATS = tuple(AUDIO_FORMATS)  # ("wav", "flac"): the engine's containers for new clips
# OSC sends bit depths as integers: 32 is 32-bit float, as in the engine's one table (engine.audio_io.BIT_DEPTHS)
BIT_DEPTHS = tuple(int(depth.rstrip("f")) for depth in AUDIO_BIT_DEPTHS)  # (16, 24, 32)


@dataclass(frozen=True)
class RenderSettings:
    steps: int | None = None
    sampler: str | None = None
    gl_iters: int | None = None
    bpm: float = 120.0
    bpm_set: bool = False  # the client chose a tempo (else 120 is only the bar length's default: no beat grid)
    beats_per_bar: int = 4
    beat_unit: int = 4
    beat_guidance: float | None = None
    format: str | None = None
    bit_depth: int | None = None
    progress_hz: float = 20.0

    def tempo(self) -> Tempo:
        """The tempo for bar/beat lengths: beats_per_bar beats of 1/beat_unit notes, the BPM counting quarter notes
        (engine.regions.Tempo: the one bars -> seconds conversion)."""
        return Tempo(self.bpm, self.beats_per_bar, self.beat_unit, guidance=self.beat_guidance)

    def chosen_tempo(self) -> Tempo | None:
        """The tempo when the client set one with /msanii/set bpm, else None (a task then uses no beat grid, or for
        generation the tempo its seed draws from the bundle's training pieces: the audio's tempo is not known)."""
        return self.tempo() if self.bpm_set else None

    def seconds_per_bar(self) -> float:
        return self.tempo().bar_seconds


def apply_setting(settings: RenderSettings, key: str, values: Sequence[Any]) -> tuple[RenderSettings, list]:
    """Return the updated settings and the applied value(s) to echo back. `output_dir` is handled by the server."""
    def need(n: int, usage: str) -> None:
        p.count(values, n, n, f"/msanii/set {key} {usage}")

    if key == "steps":
        need(1, "<int>")
        v = p.integer(values[0], "steps", 1, 1000)
        return dataclasses.replace(settings, steps=v), [v]
    if key == "sampler":
        need(1, f"<{'|'.join(SAMPLER_NAMES)}>")
        v = p.choice(values[0], "sampler", SAMPLER_NAMES)
        return dataclasses.replace(settings, sampler=v), [v]
    if key == "gl_iters":
        need(1, "<int>")
        v = p.integer(values[0], "gl_iters", 0, 1000)
        return dataclasses.replace(settings, gl_iters=v), [v]
    if key in ("bpm", "tempo"):
        need(1, "<float>")
        v = p.number(values[0], "bpm", 20.0, 400.0)
        return dataclasses.replace(settings, bpm=v, bpm_set=True), [v]
    if key == "time_signature":
        need(2, "<beats> <unit>")
        n = p.integer(values[0], "beats per bar", 1, 32)
        d = p.integer(values[1], "beat unit", 1, 32)
        if d not in (1, 2, 4, 8, 16, 32):
            raise p.RequestError(f"beat unit must be 1, 2, 4, 8, 16 or 32, got {d}")
        return dataclasses.replace(settings, beats_per_bar=n, beat_unit=d), [n, d]
    if key == "beat_guidance":
        need(1, "<float>")
        v = p.number(values[0], "beat_guidance", 0.0, MAX_GUIDANCE)
        return dataclasses.replace(settings, beat_guidance=v), [v]
    if key == "format":
        need(1, "<wav|flac>")
        v = p.choice(values[0], "format", FORMATS)
        depth = settings.bit_depth
        if v == "flac" and depth == 32:
            depth = 24
        return dataclasses.replace(settings, format=v, bit_depth=depth), [v]
    if key == "bit_depth":
        need(1, "<16|24|32>")
        v = p.integer(values[0], "bit_depth", min(BIT_DEPTHS), max(BIT_DEPTHS))
        if v not in BIT_DEPTHS:
            raise p.RequestError(f"bit_depth must be {', '.join(map(str, BIT_DEPTHS[:-1]))} or {BIT_DEPTHS[-1]}, got {v}")
        if v == 32 and settings.format == "flac":
            raise p.RequestError("FLAC stores 16 or 24 bits; use format wav for 32-bit float")
        return dataclasses.replace(settings, bit_depth=v), [v]
    if key == "progress_hz":
        need(1, "<float>")
        v = p.number(values[0], "progress_hz", 1.0, 50.0)
        return dataclasses.replace(settings, progress_hz=v), [v]
    raise p.RequestError(
        f"unknown setting {key!r}; known: steps, sampler, gl_iters, bpm, time_signature, beat_guidance, format, "
        "bit_depth, "
        "output_dir, progress_hz")
