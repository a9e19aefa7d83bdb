"""Beat and downbeat times of a rendered piece, from its MIDI, kept beside its audio as `<name>.beats.json`.

A beat is the time signature's counting unit (engine.beat_grid.counting_unit: the denominator's note; in 6/8, 9/8
and 12/8 a dotted quarter), a downbeat the start of each bar. FluidSynth renders MIDI from tick 0, so MIDI time is audio time. The sidecar is the
contract with `training.data.audio_folder` (which turns it into per-frame features, `engine.beat_grid`): any audio
folder may carry one per file, e.g. written from a DAW's tempo map:
    {"format": "msanii-beats", "version": 1, "beats": [seconds, ...], "downbeats": [seconds, ...]}
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import mido
import numpy as np

from engine.beat_grid import counting_unit
from training.data.errors import DataError

SIDECAR_SUFFIX = ".beats.json"
FORMAT = "msanii-beats"


def sidecar_path(audio_path: Path) -> Path:
    return audio_path.with_name(audio_path.stem + SIDECAR_SUFFIX)


def _tick_seconds(midi: mido.MidiFile) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]], int]:
    """(tempo changes [(tick, us per quarter)], time signatures [(tick, num, den)], last tick) of all tracks."""
    tempos, signatures, end = [], [], 0
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos.append((tick, msg.tempo))
            elif msg.type == "time_signature":
                signatures.append((tick, msg.numerator, msg.denominator))
        end = max(end, tick)
    tempos = sorted(dict(sorted(tempos)).items()) or [(0, 500_000)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0, 500_000))
    signatures = sorted({t: (t, n, d) for t, n, d in sorted(signatures)}.values()) or [(0, 4, 4)]
    if signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    return tempos, signatures, end


def _to_seconds(ticks: np.ndarray, tempos: list[tuple[int, int]], ticks_per_beat: int) -> np.ndarray:
    starts = np.array([t for t, _ in tempos], dtype=np.float64)
    rates = np.array([us for _, us in tempos], dtype=np.float64) / 1e6 / ticks_per_beat  # seconds per tick
    offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * rates[:-1])])
    segment = np.searchsorted(starts, ticks, side="right") - 1
    return offsets[segment] + (ticks - starts[segment]) * rates[segment]


def _note_ticks(midi: mido.MidiFile) -> tuple[np.ndarray, np.ndarray]:
    """(tick, velocity) of every note-on of all tracks."""
    ticks, velocities = [], []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                ticks.append(tick)
                velocities.append(msg.velocity)
    return np.asarray(ticks, dtype=np.float64), np.asarray(velocities, dtype=np.float64)


def _onset_phase(ticks: np.ndarray, weights: np.ndarray, period: float, candidates: np.ndarray) -> float:
    """The candidate offset (ticks) on whose grid of `period` the most note weight lands (each note counted by its
    closeness, falling to 0 at 1/24 period off the grid)."""
    if ticks.size == 0:
        return float(candidates[0])
    distance = np.abs((ticks[None, :] - candidates[:, None] + period / 2) % period - period / 2)
    closeness = np.clip(1 - distance / (period / 24), 0, None)
    return float(candidates[int(np.argmax((closeness * weights[None, :]).sum(1)))])


def beats_from_midi(path: str | Path, align_to_notes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(beat times, downbeat times) in seconds of the MIDI file at `path`, up to and including its last tick.

    `align_to_notes`: the file is a window cut from a longer work at a time that need not be a bar line (a music21
    window), so tick 0 is not a beat: up to its first time-signature change the beat phase is the one the notes'
    onsets agree on (the grid offset with the most onsets on it) and the bar phase the beat of the bar whose
    onsets weigh most (velocity), as a score's strong beat does."""
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable MIDI file ({exc})") from exc
    tempos, signatures, end = _tick_seconds(midi)
    tpb = midi.ticks_per_beat
    beat_ticks, bar_ticks = [], []
    notes = _note_ticks(midi) if align_to_notes else None
    for i, (start, num, den) in enumerate(signatures):
        stop = signatures[i + 1][0] if i + 1 < len(signatures) else end + 1
        quarters, per_bar = counting_unit(num, den)
        unit, bar = tpb * quarters, tpb * 4 / den * num
        beat_start = bar_start = start
        if notes is not None and i == 0:
            inside = notes[0] < stop
            ticks, weights = notes[0][inside], notes[1][inside]
            beat_start = _onset_phase(ticks, np.ones_like(ticks), unit, np.arange(0, unit, unit / 48))
            bar_start = _onset_phase(ticks, weights, bar, beat_start + unit * np.arange(int(round(per_bar))))
            bar_start %= bar
        beat_ticks.extend(np.arange(beat_start, stop, unit))
        bar_ticks.extend(np.arange(bar_start, stop, bar))
    beats = _to_seconds(np.array(beat_ticks, dtype=np.float64), tempos, tpb)
    downbeats = _to_seconds(np.array(bar_ticks, dtype=np.float64), tempos, tpb)
    return beats, downbeats


def write_sidecar(audio_path: Path, beats: np.ndarray, downbeats: np.ndarray, overwrite: bool = False) -> Path:
    """Write `<audio stem>.beats.json` beside `audio_path` (temp name, then rename); returns its path."""
    out = sidecar_path(audio_path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
    data = {"format": FORMAT, "version": 1, "beats": [round(float(b), 6) for b in beats],
            "downbeats": [round(float(b), 6) for b in downbeats]}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, out)
    return out


def read_sidecar(audio_path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(beats, downbeats) from the sidecar of `audio_path`, or None when it has none."""
    path = sidecar_path(audio_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        beats = np.asarray(data["beats"], dtype=np.float64)
        downbeats = np.asarray(data.get("downbeats", []), dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a beat sidecar ({exc})") from exc
    if data.get("format") != FORMAT or beats.ndim != 1 or beats.size < 2 or np.any(np.diff(beats) <= 0):
        raise DataError(f"{path}: a beat sidecar needs format {FORMAT!r} and at least two increasing beat times")
    return beats, downbeats


def annotate_pieces(root: Path, pieces: list[dict], overwrite: bool = False) -> int:
    """Write the beat sidecar of each corpus piece ({"wav", "midi"} paths under `root`) that has its audio and no
    sidecar yet (or every one with `overwrite`); returns how many were written."""
    written = 0
    for piece in pieces:
        wav = root / piece["wav"]
        if not wav.is_file() or (sidecar_path(wav).exists() and not overwrite):
            continue
        window = (piece.get("info") or {}).get("start_seconds", 0) > 0  # cut from a longer work (music21_source)
        write_sidecar(wav, *beats_from_midi(root / piece["midi"], align_to_notes=window), overwrite=overwrite)
        written += 1
    return written


def annotate_corpus(corpus_dir: str | Path, overwrite: bool = False) -> int:
    """Write the beat sidecars of a corpus folder's pieces from its corpus.json (a corpus made before make-corpus
    wrote them); returns how many were written."""
    root = Path(corpus_dir)
    manifest = root / "corpus.json"
    if not manifest.is_file():
        raise DataError(f"{root} is not a corpus folder (no corpus.json)")
    try:
        pieces = json.loads(manifest.read_text())["pieces"]
    except (ValueError, KeyError) as exc:
        raise DataError(f"{manifest}: not a corpus manifest ({exc})") from exc
    return annotate_pieces(root, pieces, overwrite)
