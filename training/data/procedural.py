"""Procedural pop-style MIDI pieces: chords, melody, bass and drums, deterministic from a seed.

Stands in for POP909 (which cannot be downloaded here): every piece has a key (major or minor), a tempo of
80-140 BPM, a verse/chorus form over common pop progressions (I-V-vi-IV, vi-IV-I-V, i-VI-III-VII, ...), a melody
built from a repeated two-bar motif that follows the harmony, a bass line, a comping instrument, an optional pad and
a GM drum kit on channel 10, with General MIDI programs and stereo placement (CC10 pan) drawn per piece.

Only `random.Random(seed)` is used (its sequence for an integer seed is stable across Python versions) and events
are sorted with a total order, so the same seed always gives the same MIDI bytes.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any

import mido

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # one 16th note
BAR_STEPS = 16  # 4/4 only

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# Scale degrees (0 = tonic) of four-chord loops.
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (0, 3, 5, 4), (3, 4, 2, 5),
                      (0, 2, 3, 4), (1, 4, 0, 0), (0, 4, 3, 4), (3, 0, 4, 5))
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 6, 5, 6), (0, 3, 4, 0), (0, 3, 6, 2), (5, 6, 0, 0), (0, 5, 3, 4),
                      (0, 2, 3, 5), (0, 6, 5, 4))
# General MIDI programs (0-based) per role.
COMP_PROGRAMS = (0, 1, 2, 4, 5, 6, 7, 11, 12, 16, 17, 18, 24, 25, 26, 27, 28, 46, 48, 61, 62, 88, 89, 90)
LEAD_PROGRAMS = (0, 8, 11, 13, 22, 26, 29, 30, 40, 52, 54, 56, 64, 65, 66, 68, 71, 73, 75, 80, 81, 84, 85, 87)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43, 87)
PAD_PROGRAMS = (48, 49, 50, 51, 52, 53, 88, 89, 91, 92, 94, 95)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # standard, room, power, electronic, TR-808, jazz, brush
CH_MELODY, CH_COMP, CH_BASS, CH_PAD, CH_DRUMS = 0, 1, 2, 3, 9

COMP_STYLES = {  # (onset step, length in steps) within a bar; every chord tone sounds at each onset
    "whole": ((0, 16),),
    "halves": ((0, 8), (8, 8)),
    "quarters": ((0, 3), (4, 3), (8, 3), (12, 3)),
    "offbeat": ((2, 2), (6, 2), (10, 2), (14, 2)),
    "push": ((0, 6), (6, 4), (10, 6)),
    "pop": ((0, 3), (3, 3), (6, 4), (10, 2), (12, 4)),
}
ARPEGGIO_STYLES = ("arp_up", "arp_updown", "broken")
BASS_STYLES = {  # (onset, length, interval above the chord root in semitones)
    "whole": ((0, 16, 0),),
    "halves": ((0, 8, 0), (8, 8, 7)),
    "eighths": tuple((i * 2, 2, 0) for i in range(8)),
    "octaves": tuple((i * 2, 2, 12 * (i % 2)) for i in range(8)),
    "syncopated": ((0, 3, 0), (3, 3, 0), (6, 2, 7), (8, 4, 0), (12, 2, 12), (14, 2, 7)),
    "ballad": ((0, 6, 0), (6, 2, 0), (8, 8, 7)),
}
DRUM_STYLES = {  # GM key -> onset steps
    "rock": {36: (0, 8), 38: (4, 12), 42: tuple(range(0, 16, 2))},
    "pop": {36: (0, 6, 8), 38: (4, 12), 42: tuple(range(0, 16, 2))},
    "four": {36: (0, 4, 8, 12), 39: (4, 12), 42: (0, 4, 8, 12), 46: (2, 6, 10, 14)},
    "halftime": {36: (0, 10), 38: (8,), 42: tuple(range(0, 16, 2))},
    "sixteenths": {36: (0, 7, 8), 38: (4, 12), 42: tuple(range(16))},
    "ballad": {36: (0, 10), 37: (4, 12), 42: (0, 4, 8, 12)},
}
MELODY_CELLS = (  # one bar of (onset, length)
    ((0, 4), (4, 4), (8, 4), (12, 4)),
    ((0, 2), (2, 2), (4, 4), (8, 2), (10, 2), (12, 4)),
    ((0, 6), (6, 2), (8, 8)),
    ((0, 4), (6, 2), (8, 4), (12, 2), (14, 2)),
    ((2, 2), (4, 2), (6, 4), (10, 2), (12, 4)),
    ((0, 8), (8, 8)),
    ((0, 3), (3, 3), (6, 2), (8, 8)),
    ((0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 4)),
)


@dataclass
class PopPiece:
    midi: mido.MidiFile
    seconds: float  # nominal length (without FluidSynth's release tail)
    info: dict[str, Any]

    def to_bytes(self) -> bytes:
        return midi_to_bytes(self.midi)


def midi_to_bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


class _Track:
    """Absolute-time events of one part; `messages()` gives delta-timed mido messages in a total order."""

    def __init__(self, name: str, channel: int) -> None:
        self.name, self.channel = name, channel
        self._events: list[tuple[int, int, int, mido.Message]] = []

    def _add(self, tick: int, priority: int, msg: mido.Message) -> None:
        self._events.append((tick, priority, len(self._events), msg))

    def control(self, tick: int, control: int, value: int) -> None:
        self._add(tick, 0, mido.Message("control_change", channel=self.channel, control=control, value=value))

    def program(self, tick: int, program: int) -> None:
        self._add(tick, 0, mido.Message("program_change", channel=self.channel, program=program))

    def note(self, tick: int, length: int, pitch: int, velocity: int) -> None:
        pitch, velocity = min(max(pitch, 0), 127), min(max(velocity, 1), 127)
        tick = max(tick, 0)  # timing scatter may push a first note before the start
        self._add(tick, 2, mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity))
        # note-offs sort before note-ons at the same tick, so repeated notes retrigger cleanly
        self._add(tick + max(length, 1), 1, mido.Message("note_off", channel=self.channel, note=pitch, velocity=0))

    def to_midi_track(self) -> mido.MidiTrack:
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=self.name, time=0)])
        now = 0
        for tick, _, _, msg in sorted(self._events, key=lambda e: e[:3]):
            track.append(msg.copy(time=tick - now))
            now = tick
        return track


def _semitones(degree: int, scale: tuple[int, ...]) -> int:
    return 12 * (degree // 7) + scale[degree % 7]


def _fold(pitch: int, low: int, high: int) -> int:
    """Move `pitch` by octaves into [low, high)."""
    while pitch < low:
        pitch += 12
    while pitch >= high:
        pitch -= 12
    return pitch


def _form(bars: int, rng: random.Random) -> list[tuple[str, int]]:
    """Section names and lengths summing to `bars`: intro, alternating verse/chorus, one-bar ending."""
    intro = rng.choice((2, 4)) if bars >= 14 else 0
    body = bars - intro - 1
    section = 8 if body >= 16 else 4
    form = [("intro", intro)] if intro else []
    names = ("verse", "chorus")
    index = 0
    while body > 0:
        length = section if body - section >= 4 or body == section else body
        form.append((names[index % 2], length))
        body -= length
        index += 1
    return form + [("ending", 1)]


def generate_pop_piece(seed: int, target_seconds: float = 40.0) -> PopPiece:
    """One pop-style piece of about `target_seconds` (rounded to whole 4/4 bars), deterministic from `seed`."""
    rng = random.Random(seed)
    minor = rng.random() < 0.4
    scale = MINOR if minor else MAJOR
    key = rng.randrange(12)
    tonic = 60 + key - (12 if key > 6 else 0)  # tonic between F#3 and F#4
    bpm = rng.randrange(80, 141)
    bars = max(6, round(target_seconds * bpm / 240.0))
    progressions = MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS
    verse_prog, chorus_prog = rng.choice(progressions), rng.choice(progressions)
    chords_per_bar = 2 if rng.random() < 0.25 else 1
    sevenths = rng.random() < 0.3
    programs = {"melody": rng.choice(LEAD_PROGRAMS), "comp": rng.choice(COMP_PROGRAMS),
                "bass": rng.choice(BASS_PROGRAMS), "pad": rng.choice(PAD_PROGRAMS), "drums": rng.choice(DRUM_KITS)}
    comp_side = rng.choice((-1, 1))
    pans = {"melody": 64 + rng.randint(-12, 12), "comp": 64 + comp_side * rng.randint(18, 45),
            "bass": 64 + rng.randint(-6, 6), "pad": 64 - comp_side * rng.randint(18, 45), "drums": 64}
    volumes = {"melody": rng.randint(96, 112), "comp": rng.randint(72, 92), "bass": rng.randint(92, 108),
               "pad": rng.randint(56, 76), "drums": rng.randint(88, 104)}
    styles = {"verse_comp": rng.choice(tuple(COMP_STYLES) + ARPEGGIO_STYLES),
              "chorus_comp": rng.choice(tuple(COMP_STYLES) + ARPEGGIO_STYLES),
              "verse_bass": rng.choice(tuple(BASS_STYLES)), "chorus_bass": rng.choice(tuple(BASS_STYLES)),
              "drums": rng.choice(tuple(DRUM_STYLES)), "intro_drums": rng.choice(("none", "hats", "full"))}
    form = _form(bars, rng)

    tracks = {name: _Track(name, ch) for name, ch in
              (("melody", CH_MELODY), ("comp", CH_COMP), ("bass", CH_BASS), ("pad", CH_PAD), ("drums", CH_DRUMS))}
    for name, track in tracks.items():
        track.program(0, programs[name])
        track.control(0, 7, volumes[name])
        track.control(0, 10, min(max(pans[name], 0), 127))
        track.control(0, 91, rng.randint(20, 80))  # reverb send
        track.control(0, 93, rng.randint(0, 30) if name != "drums" else 0)  # chorus send

    def chord_degrees(progression: tuple[int, ...], bar: int, step: int) -> list[int]:
        root = progression[(bar * chords_per_bar + step * chords_per_bar // BAR_STEPS) % len(progression)]
        return [root, root + 2, root + 4] + ([root + 6] if sevenths else [])

    motifs = {part: _motif(rng, high=(part == "chorus")) for part in ("verse", "chorus")}
    bar_index = 0
    for section, length in form:
        progression = chorus_prog if section == "chorus" else verse_prog
        for local_bar in range(length):
            start = (bar_index + local_bar) * BAR_STEPS * STEP
            last_of_section = local_bar == length - 1
            chord_of = lambda step, b=local_bar: chord_degrees(progression, b, step)  # noqa: E731
            if section == "ending":
                _ending_bar(tracks, start, chord_degrees(verse_prog[:1], 0, 0), scale, tonic, rng)
                continue
            comp_style = styles["chorus_comp" if section == "chorus" else "verse_comp"]
            _comp_bar(tracks["comp"], start, chord_of, comp_style, scale, tonic, rng)
            # the pad always plays in choruses; in verses for half the pieces (keyed on the pad program, which
            # keeps the draw sequence - hence the MIDI of existing corpora - unchanged)
            if section == "chorus" or (section == "verse" and programs["pad"] % 2 == 0):
                _pad_bar(tracks["pad"], start, chord_of, scale, tonic, rng)
            if section != "intro":
                bass_style = styles["chorus_bass" if section == "chorus" else "verse_bass"]
                _bass_bar(tracks["bass"], start, chord_of, bass_style, scale, tonic, rng)
                _melody_bar(tracks["melody"], start, chord_of, motifs[section], local_bar, scale, tonic, rng)
            drum_mode = styles["intro_drums"] if section == "intro" else "full"
            if drum_mode != "none":
                _drum_bar(tracks["drums"], start, styles["drums"], hats_only=(drum_mode == "hats"),
                          busy=(section == "chorus"), crash=(local_bar == 0 and section != "intro"),
                          fill=last_of_section and section != "intro" and length >= 4, rng=rng)
        bar_index += length

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack([
        mido.MetaMessage("track_name", name=f"msanii pop {seed}", time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
    ])
    midi.tracks.append(conductor)
    midi.tracks.extend(track.to_midi_track() for track in tracks.values())
    info = {"key": key, "mode": "minor" if minor else "major", "bpm": bpm, "bars": bars,
            "form": [f"{name}:{length}" for name, length in form], "programs": programs, "pans": pans,
            "styles": styles, "progressions": {"verse": list(verse_prog), "chorus": list(chorus_prog)}}
    return PopPiece(midi=midi, seconds=bars * 240.0 / bpm, info=info)


def _motif(rng: random.Random, high: bool) -> list[list[tuple[int, int, int]]]:
    """Two bars of (onset, length, degree offset from the chord root); chorus motifs sit higher and move more."""
    bars = []
    degree = rng.choice((2, 4, 7)) if high else rng.choice((0, 2, 4))
    for _ in range(2):
        cell = rng.choice(MELODY_CELLS[:5] if not high else MELODY_CELLS)
        notes = []
        for onset, length in cell:
            if onset % 8 == 0:  # strong beats land on chord tones
                degree = rng.choice((0, 2, 4, 7)) + (2 if high and rng.random() < 0.4 else 0)
            else:
                degree += rng.choice((-2, -1, -1, 1, 1, 2))
            notes.append((onset, length, degree))
        bars.append(notes)
    return bars


def _melody_bar(track: _Track, start: int, chord_of, motif, local_bar: int, scale, tonic: int,
                rng: random.Random) -> None:
    phrase_pos = local_bar % 4
    notes = motif[phrase_pos % 2]
    if phrase_pos == 3:  # phrase ending: shorten to a held chord tone
        notes = [n for n in notes if n[0] < 8] + [(8, 8, rng.choice((0, 2, 4)))]
    for onset, length, offset in notes:
        root = chord_of(onset)[0]
        degree = root + offset
        if phrase_pos == 2 and rng.random() < 0.3:  # vary the repeat
            degree += rng.choice((-1, 1))
        pitch = _fold(tonic + 12 + _semitones(degree, scale), 62, 86)
        jitter = rng.randint(-6, 6) if onset else 0
        track.note(start + onset * STEP + jitter, length * STEP - 20, pitch, rng.randint(78, 108))


def _voicing(degrees: list[int], scale, tonic: int, low: int, high: int) -> list[int]:
    return sorted({_fold(tonic + _semitones(d, scale), low, high) for d in degrees})


def _comp_bar(track: _Track, start: int, chord_of, style: str, scale, tonic: int, rng: random.Random) -> None:
    if style in COMP_STYLES:
        for onset, length in COMP_STYLES[style]:
            for pitch in _voicing(chord_of(onset), scale, tonic, 55, 67):
                track.note(start + onset * STEP, length * STEP - 10, pitch, rng.randint(60, 88))
        return
    for i in range(8):  # eighth-note arpeggios
        onset = i * 2
        voicing = _voicing(chord_of(onset), scale, tonic, 55, 67)
        voicing = voicing + [voicing[0] + 12]
        if style == "arp_up":
            pitch = voicing[i % len(voicing)]
        elif style == "arp_updown":
            cycle = voicing + voicing[-2:0:-1]
            pitch = cycle[i % len(cycle)]
        else:  # broken: root, fifth, third, fifth
            pitch = voicing[(0, 2, 1, 2)[i % 4] % len(voicing)]
        track.note(start + onset * STEP, 2 * STEP - 10, pitch, rng.randint(62, 90))


def _pad_bar(track: _Track, start: int, chord_of, scale, tonic: int, rng: random.Random) -> None:
    for half in (0, 8):
        if half and chord_of(0) == chord_of(8):
            continue
        length = 16 if chord_of(0) == chord_of(8) else 8
        for pitch in _voicing(chord_of(half), scale, tonic, 60, 74):
            track.note(start + half * STEP, length * STEP - 5, pitch, rng.randint(50, 70))


def _bass_bar(track: _Track, start: int, chord_of, style: str, scale, tonic: int, rng: random.Random) -> None:
    for onset, length, interval in BASS_STYLES[style]:
        root = _fold(tonic + _semitones(chord_of(onset)[0], scale), 33, 45)
        track.note(start + onset * STEP, length * STEP - 15, root + interval, rng.randint(84, 110))


def _drum_bar(track: _Track, start: int, style: str, hats_only: bool, busy: bool, crash: bool, fill: bool,
              rng: random.Random) -> None:
    pattern = DRUM_STYLES[style]
    for key, onsets in pattern.items():
        if hats_only and key not in (42, 46):
            continue
        if busy and key == 42 and style != "sixteenths":
            key = rng.choice((42, 46, 51))  # chorus: open hat or ride
        for onset in onsets:
            if fill and onset >= 12 and key in (36, 38, 37, 39):
                continue
            accent = 12 if onset % 4 == 0 else 0
            track.note(start + onset * STEP, STEP, key, rng.randint(70, 96) + accent)
    if crash:
        track.note(start, 4 * STEP, 49, rng.randint(90, 115))
    if fill:
        toms = rng.choice(((38, 38, 38, 38), (50, 48, 47, 45), (38, 47, 38, 45), (38, 38, 50, 50)))
        for i, key in enumerate(toms):
            track.note(start + (12 + i) * STEP, STEP, key, rng.randint(80, 110) + 4 * i)


def _ending_bar(tracks: dict[str, _Track], start: int, degrees: list[int], scale, tonic: int,
                rng: random.Random) -> None:
    whole = BAR_STEPS * STEP
    for pitch in _voicing(degrees, scale, tonic, 55, 67):
        tracks["comp"].note(start, whole, pitch, rng.randint(70, 90))
    for pitch in _voicing(degrees, scale, tonic, 60, 74):
        tracks["pad"].note(start, whole, pitch, rng.randint(55, 70))
    tracks["bass"].note(start, whole, _fold(tonic, 33, 45), rng.randint(90, 105))
    tracks["melody"].note(start, whole, _fold(tonic + 12, 62, 86), rng.randint(80, 100))
    tracks["drums"].note(start, 4 * STEP, 49, rng.randint(95, 115))
    tracks["drums"].note(start, STEP, 36, rng.randint(95, 110))
