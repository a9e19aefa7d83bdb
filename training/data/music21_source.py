"""Pieces from music21's bundled corpus as orchestrated MIDI windows (the second offline source of the corpus).

music21 ships ~3000 scores (Bach chorales, Renaissance madrigals, string quartets, rags, folk tunes). Each chosen
work is converted to MIDI, its tempo scaled, each part moved to its own channel and given an instrument from an
ensemble (strings, brass, winds, choir, synths, ...) with its own pan position, and long works are cut into one or
two windows of 30-55 s. Everything is drawn from a `random.Random` seeded per work, so output is deterministic for a
given music21 version.
"""
from __future__ import annotations

import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mido

from training.data.midi import DRUM_CHANNEL

# Top voice first; a part is given the entry matching its rank from highest to lowest.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "strings": (40, 40, 41, 42, 43), "string_section": (48, 48, 49, 48), "brass": (56, 60, 57, 58),
    "winds": (73, 68, 71, 70), "saxes": (64, 65, 66, 67), "church_organ": (19,), "drawbar_organ": (16, 16, 17),
    "choir": (52, 53, 52, 52), "piano": (0,), "electric_piano": (4, 5, 4, 33), "harpsichord": (6,),
    "guitars": (24, 25, 27, 32), "mallets": (11, 12, 13, 32), "synths": (81, 80, 88, 38),
    "pads": (89, 91, 88, 39), "mixed": (73, 40, 71, 42), "pop_band": (80, 4, 48, 33),
}
COLLECTIONS = ("bach", "monteverdi", "beethoven", "mozart", "haydn", "joplin", "chopin", "schumann_clara",
               "schumann_robert", "beach", "handel", "schubert", "trecento", "josquin", "luca", "ciconia",
               "palestrina", "cpebach", "verdi", "weber", "liliuokalani", "johnson_j_r")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".mid")
# The piano palette (the default corpus): every part on one keyboard, most often the acoustic grand.
KEYBOARD_ENSEMBLES: dict[str, tuple[int, ...]] = {
    "grand_piano": (0,), "grand_piano_2": (0,), "grand_piano_3": (0,), "bright_piano": (1,),
    "electric_grand": (2,), "electric_piano": (4,),
}
PALETTES = {"piano": KEYBOARD_ENSEMBLES, "band": ENSEMBLES}


def candidate_works(max_per_collection: int = 60) -> list[str]:
    """Corpus paths (relative to music21's corpus folder) we may draw from, in a fixed order.

    Large collections (Palestrina has ~1300 masses) are thinned to `max_per_collection` evenly spaced works so the
    choice stays varied and bounded.
    """
    from music21 import corpus

    root = Path(corpus.__file__).resolve().parent
    works: list[str] = []
    for name in COLLECTIONS:
        paths = sorted(str(Path(p).resolve().relative_to(root)) for p in corpus.getComposer(name)
                       if str(p).endswith(SCORE_SUFFIXES))
        if len(paths) > max_per_collection:
            stride = len(paths) / max_per_collection
            paths = [paths[int(i * stride)] for i in range(max_per_collection)]
        works.extend(paths)
    return works


# music21 parses a few MB of MusicXML for minutes (a whole Beethoven quartet: ~8 min on this CPU), while only the
# first ~110 s of a work are used: works above this size (a .mxl counted at ~20x, its usual compression) are skipped.
MAX_SCORE_BYTES = 1_200_000
MXL_EXPANSION = 20


def score_too_large(relative_path: str) -> bool:
    """Whether parsing this corpus work would cost minutes (see MAX_SCORE_BYTES)."""
    from music21 import corpus

    path = Path(corpus.__file__).resolve().parent / relative_path
    size = path.stat().st_size * (MXL_EXPANSION if path.suffix == ".mxl" else 1)
    return size > MAX_SCORE_BYTES


def work_to_midi(relative_path: str) -> mido.MidiFile:
    """Parse a music21 corpus work and convert it to MIDI (raises whatever music21 raises on a bad score)."""
    from music21 import corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(relative_path)
        with tempfile.TemporaryDirectory(prefix="msanii-m21-") as tmp:
            path = Path(tmp) / "work.mid"
            score.write("midi", fp=str(path))
            return mido.MidiFile(str(path))


def _tempo_map(midi: mido.MidiFile) -> list[tuple[int, int]]:
    changes = [(0, 500_000)]
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort(key=lambda c: c[0])
    return changes


def _seconds_to_tick(midi: mido.MidiFile, seconds: float) -> int:
    changes = _tempo_map(midi)
    elapsed, tick, tempo = 0.0, 0, changes[0][1]
    for change_tick, change_tempo in changes[1:]:
        span = mido.tick2second(change_tick - tick, midi.ticks_per_beat, tempo)
        if elapsed + span >= seconds:
            break
        elapsed, tick, tempo = elapsed + span, change_tick, change_tempo
    return tick + int(round(mido.second2tick(seconds - elapsed, midi.ticks_per_beat, tempo)))


def scale_tempo(midi: mido.MidiFile, factor: float) -> mido.MidiFile:
    """A copy playing `factor` times faster (every set_tempo is scaled; a file without one gets one)."""
    result = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    has_tempo = False
    for track in midi.tracks:
        new = mido.MidiTrack()
        for msg in track:
            if msg.type == "set_tempo":
                has_tempo = True
                msg = msg.copy(tempo=max(1, min(16_777_215, int(round(msg.tempo / factor)))))
            new.append(msg)
        result.tracks.append(new)
    if not has_tempo:
        result.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=int(round(500_000 / factor)), time=0))
    return result


def window_midi(midi: mido.MidiFile, start_s: float, end_s: float) -> mido.MidiFile:
    """The part of `midi` between two times: notes starting inside are kept (and cut at the end); the controller,
    program and tempo state at the start is carried over to time 0."""
    start, end = _seconds_to_tick(midi, start_s), _seconds_to_tick(midi, end_s)
    result = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for track in midi.tracks:
        state: dict[tuple, mido.Message] = {}
        body: list[tuple[int, mido.Message]] = []
        sounding: dict[tuple[int, int], int] = {}
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "end_of_track":
                continue
            is_on = msg.type == "note_on" and msg.velocity > 0
            is_off = msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)
            if tick < start:
                if not (is_on or is_off) and not (msg.is_meta and msg.type in ("lyrics", "text", "marker")):
                    key = (msg.type, getattr(msg, "channel", None), getattr(msg, "control", None))
                    state[key] = msg
                continue
            if is_on and tick < end:
                sounding[(msg.channel, msg.note)] = sounding.get((msg.channel, msg.note), 0) + 1
                body.append((tick - start, msg))
            elif is_off and sounding.get((msg.channel, msg.note), 0) > 0 and tick <= end:
                sounding[(msg.channel, msg.note)] -= 1
                body.append((tick - start, msg))
            elif not (is_on or is_off) and tick < end:
                body.append((tick - start, msg))
        for (channel, note), count in sorted(sounding.items()):
            body.extend((end - start, mido.Message("note_off", channel=channel, note=note, velocity=0))
                        for _ in range(count))
        new = mido.MidiTrack(msg.copy(time=0) for msg in state.values())
        now = 0
        for at, msg in body:  # already in time order: the source track was
            new.append(msg.copy(time=at - now))
            now = at
        result.tracks.append(new)
    return result


def orchestrate(midi: mido.MidiFile, rng: random.Random, palette: str = "band") -> tuple[mido.MidiFile,
                                                                                        dict[str, Any]]:
    """Give every part with notes its own channel, a GM program from a random ensemble of `palette` ("band": any
    GM ensemble; "piano": one keyboard) and a pan position. On the piano palette the velocities are performed:
    the top part sings over the inner ones, strong beats lean, and every note scatters a little."""
    ensembles = PALETTES[palette]
    parts = []
    for index, track in enumerate(midi.tracks):
        pitches = [m.note for m in track if m.type == "note_on" and m.velocity > 0 and m.channel != DRUM_CHANNEL]
        if pitches:
            parts.append((-sum(pitches) / len(pitches), index))
    ranked = [index for _, index in sorted(parts)]  # highest part first
    ensemble_name = rng.choice(sorted(ensembles))
    ensemble = ensembles[ensemble_name]
    width = rng.randint(20, 50) if palette == "band" else rng.randint(6, 22)  # a piano is one instrument
    order = list(range(len(ranked)))
    if rng.random() < 0.5:
        order.reverse()
    melodic_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    assignment: dict[int, tuple[int, int, int]] = {}  # track -> (channel, program, pan)
    for rank, index in enumerate(ranked):
        role = round(rank * (len(ensemble) - 1) / max(1, len(ranked) - 1))
        pan = 64 if len(ranked) == 1 else 64 - width + round(2 * width * order[rank] / (len(ranked) - 1))
        assignment[index] = (melodic_channels[rank % len(melodic_channels)], ensemble[role], pan)
    result = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for index, track in enumerate(midi.tracks):
        if index not in assignment:
            result.tracks.append(mido.MidiTrack(m for m in track if not hasattr(m, "channel")
                                                or m.channel == DRUM_CHANNEL))
            continue
        channel, program, pan = assignment[index]
        new = mido.MidiTrack()
        new.extend([mido.Message("program_change", channel=channel, program=program, time=0),
                    mido.Message("control_change", channel=channel, control=7, value=100, time=0),
                    mido.Message("control_change", channel=channel, control=10, value=pan, time=0),
                    mido.Message("control_change", channel=channel, control=91, value=rng.randint(30, 80),
                                 time=0)])
        carried = 0
        for msg in track:
            if msg.type == "program_change" or (msg.is_meta and msg.type == "lyrics"):
                carried += msg.time  # dropped: keep the timing of what follows
                continue
            msg = msg.copy(time=msg.time + carried)
            carried = 0
            if hasattr(msg, "channel") and msg.channel != DRUM_CHANNEL:
                msg = msg.copy(channel=channel)
            if palette == "piano" and msg.type == "note_on" and msg.velocity > 0:
                lead = 10 if ranked.index(index) == 0 else (-4 if 0 < ranked.index(index) < len(ranked) - 1 else 0)
                msg = msg.copy(velocity=min(max(int(msg.velocity * 0.85) + lead + rng.randint(-7, 7), 20), 120))
            new.append(msg)
        result.tracks.append(new)
    info = {"ensemble": ensemble_name, "programs": [assignment[i][1] for i in ranked],
            "pans": [assignment[i][2] for i in ranked]}
    return result, info


def work_pieces(relative_path: str, seed: int, min_seconds: float = 20.0, max_seconds: float = 55.0,
                max_windows: int = 2, palette: str = "band") -> list[tuple[mido.MidiFile, dict[str, Any]]]:
    """Orchestrated windows (20-55 s) of one corpus work; [] when it is too short. Deterministic from `seed`."""
    rng = random.Random(seed)
    factor = rng.uniform(0.85, 1.2)
    midi = scale_tempo(work_to_midi(relative_path), factor)
    length = midi.length
    if length < min_seconds:
        return []
    pieces = []
    start = 0.0
    for window in range(max_windows):
        if length - start < min_seconds:
            break
        span = min(length - start, rng.uniform(30.0, max_seconds))
        if length - start - span < min_seconds and length - start <= max_seconds:
            span = length - start  # take the whole rest instead of leaving a stub
        part = window_midi(midi, start, start + span) if (start > 0 or span < length) else midi
        orchestrated, info = orchestrate(part, rng, palette)
        info.update({"work": relative_path, "window": window, "start_seconds": round(start, 3),
                     "tempo_factor": round(factor, 4)})
        pieces.append((orchestrated, info))
        start += span
    return pieces
