"""Pop-song piano arrangements in the POP909 layout, deterministic from a seed (the default corpus's main source).

POP909 (the paper's data, section 4.1) holds 909 pop songs arranged for piano as three tracks: MELODY (the vocal
line), BRIDGE (secondary melodies and fills) and PIANO (the accompaniment), rendered by FluidSynth. It cannot be
downloaded here, so each piece is written in that layout:

- a key, major or minor, and 66-126 BPM in 4/4;
- a song form: intro, verse, optional pre-chorus, chorus, a second verse/chorus or a bridge, outro and a final chord;
- real pop progressions (I-V-vi-IV, the "royal road" IV-V-iii-vi, the canon, vi-IV-I-V, ii-V-I turns, ...), with a
  different progression per section and a cadence at each section's end;
- MELODY: two-bar motifs that land on chord tones on strong beats and move by step between, phrased in four-bar
  lines that end on a held chord tone; higher and louder in the chorus;
- BRIDGE: a counter-line in the middle register that answers the melody where it rests, in thirds/sixths in choruses;
- PIANO: a left-hand bass (root, fifth, octave) and right-hand patterns (block chords, broken chords, Alberti,
  ballad arpeggios, syncopated pop comping), with the sustain pedal changed on every chord;
- natural dynamics: a level per section, phrase arcs, accents on strong beats, small timing and velocity scatter;
- piano-family programs (mostly the acoustic grand) and a stereo placement and reverb per piece.

Only `random.Random(seed)` draws are used, so the same seed gives the same MIDI bytes.
"""
from __future__ import annotations

import random
from typing import Any

import mido

from training.data.procedural import BAR_STEPS, MAJOR, MINOR, STEP, TICKS_PER_BEAT, PopPiece, _fold, _semitones, _Track

# Scale degrees (0 = tonic) of eight-chord (two per bar: four bars) or four-chord progressions.
MAJOR_SONG_PROGRESSIONS = (
    (0, 4, 5, 3), (3, 4, 2, 5), (0, 4, 5, 2, 3, 0, 3, 4), (5, 3, 0, 4), (0, 5, 3, 4), (0, 2, 3, 4),
    (3, 4, 0, 5), (0, 3, 1, 4), (0, 4, 5, 2, 3, 0, 1, 4), (3, 0, 4, 5), (1, 4, 0, 5), (0, 3, 4, 4),
)
MINOR_SONG_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 6, 2), (5, 6, 0, 0), (0, 5, 3, 4), (0, 6, 5, 4), (3, 4, 0, 0))
# (program, weight): piano family of General MIDI; the acoustic grand dominates, as in POP909's renders.
PIANO_PROGRAMS = ((0, 0.62), (1, 0.16), (2, 0.06), (4, 0.1), (5, 0.06))
CH_MELODY, CH_BRIDGE, CH_PIANO = 0, 1, 2
ACCOMPANIMENTS = ("block", "broken", "alberti", "ballad", "pop")
SECTION_LEVEL = {"intro": 0.72, "verse": 0.8, "pre": 0.88, "chorus": 1.0, "bridge": 0.85, "outro": 0.7}


def _weighted(rng: random.Random, choices: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices], k=1)[0]


def _song_form(bars: int, rng: random.Random) -> list[tuple[str, int]]:
    """Sections and bar counts summing to `bars` (the outro's last bar holds the final chord). Every piece of 10+
    bars reaches a chorus; a remainder too short for a section lengthens the one before it."""
    intro = 2 if bars >= 10 else 0
    outro = 2 if bars >= 16 else 1
    body = bars - intro - outro
    plan = ["verse", "pre", "chorus", "verse", "chorus", "bridge", "chorus", "chorus"]
    if rng.random() < 0.5 or body < 12:
        plan.remove("pre")
    sections: list[list] = [["intro", intro]] if intro else []
    index = 0
    while body > 0:
        name = plan[index % len(plan)]
        length = min(2 if name == "pre" and body < 20 else 4 if name in ("pre", "bridge") or body < 20 else 8, body)
        if length < 2 and len(sections) > int(bool(intro)):
            sections[-1][1] += length
        else:
            sections.append([name, length])
        body -= length
        index += 1
    return [(name, length) for name, length in sections] + [("outro", outro)]


class _Song:
    """One piece's harmony and note writers; `tracks` holds the three POP909 tracks."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.minor = rng.random() < 0.35
        self.scale = MINOR if self.minor else MAJOR
        key = rng.randrange(12)
        self.tonic = 60 + key - (12 if key > 6 else 0)
        self.key = key
        self.bpm = rng.randrange(66, 127)
        progressions = MINOR_SONG_PROGRESSIONS if self.minor else MAJOR_SONG_PROGRESSIONS
        self.progressions = {name: rng.choice(progressions) for name in ("verse", "pre", "chorus", "bridge")}
        self.progressions["intro"] = self.progressions["outro"] = self.progressions["chorus"]
        self.sevenths = rng.random() < 0.45
        self.accompaniment = {name: rng.choice(ACCOMPANIMENTS) for name in ("verse", "chorus", "bridge")}
        self.accompaniment.update(intro=self.accompaniment["chorus"], pre=self.accompaniment["verse"],
                                  outro=self.accompaniment["verse"])
        self.tracks = {"melody": _Track("MELODY", CH_MELODY), "bridge": _Track("BRIDGE", CH_BRIDGE),
                       "piano": _Track("PIANO", CH_PIANO)}
        self.motifs = {name: self._motif(high=name == "chorus") for name in ("verse", "pre", "chorus", "bridge")}

    # -- harmony ----------------------------------------------------------------------------------------------
    def chord(self, section: str, bar: int, half: int) -> list[int]:
        """Scale degrees of the chord at (bar, half-bar) of a section; the section's last bar cadences."""
        progression = self.progressions[section]
        per_bar = 2 if len(progression) == 8 else 1
        root = progression[(bar * per_bar + (half if per_bar == 2 else 0)) % len(progression)]
        return [root, root + 2, root + 4] + ([root + 6] if self.sevenths and root in (1, 4, 5) else [])

    def pitch(self, degree: int, low: int, high: int) -> int:
        return _fold(self.tonic + _semitones(degree, self.scale), low, high)

    def voicing(self, degrees: list[int], low: int, high: int) -> list[int]:
        return sorted({self.pitch(d, low, high) for d in degrees})

    # -- performance ------------------------------------------------------------------------------------------
    def velocity(self, base: float, level: float, step: int, phrase_pos: float) -> int:
        accent = 8 if step % 8 == 0 else (3 if step % 4 == 0 else 0)
        arc = 1.0 + 0.12 * (1.0 - abs(2.0 * phrase_pos - 1.0))  # phrases swell to their middle
        return int(base * level * arc + accent + self.rng.randint(-6, 6))

    def jitter(self) -> int:
        return self.rng.randint(-8, 8)

    def _motif(self, high: bool) -> list[list[tuple[int, int, int]]]:
        """Two bars of (onset step, length in steps, degree above the chord root)."""
        cells = (((0, 4), (4, 2), (6, 2), (8, 6)), ((0, 2), (2, 2), (4, 4), (8, 2), (10, 2), (12, 4)),
                 ((2, 2), (4, 2), (6, 4), (10, 2), (12, 4)), ((0, 6), (6, 2), (8, 8)),
                 ((0, 3), (3, 3), (6, 2), (8, 4), (12, 4)), ((4, 2), (6, 2), (8, 4), (12, 2), (14, 2)))
        bars = []
        degree = self.rng.choice((2, 4, 7) if high else (0, 2, 4))
        for _ in range(2):
            notes = []
            for onset, length in self.rng.choice(cells):
                if onset % 8 == 0:
                    degree = self.rng.choice((0, 2, 4, 7)) + (2 if high and self.rng.random() < 0.4 else 0)
                else:
                    degree += self.rng.choice((-2, -1, -1, 1, 1, 2))
                notes.append((onset, length, degree))
            bars.append(notes)
        return bars

    # -- parts ------------------------------------------------------------------------------------------------
    def melody_bar(self, section: str, start: int, bar: int, level: float) -> list[int]:
        """Write one bar of melody; returns the onset steps it used (the bridge answers around them)."""
        phrase_pos = bar % 4
        notes = self.motifs[section][phrase_pos % 2]
        if phrase_pos == 3:  # phrase end: a held chord tone
            notes = [n for n in notes if n[0] < 8] + [(8, 8, self.rng.choice((0, 2, 4)))]
        low, high = (67, 88) if section == "chorus" else (62, 84)
        used = []
        for onset, length, offset in notes:
            root = self.chord(section, bar, onset // 8)[0]
            degree = root + offset + (self.rng.choice((-1, 1)) if phrase_pos == 2 and self.rng.random() < 0.3 else 0)
            velocity = self.velocity(84, level, onset, (phrase_pos * 16 + onset) / 64)
            self.tracks["melody"].note(start + onset * STEP + self.jitter(), length * STEP - 24,
                                       self.pitch(degree + 7, low, high), velocity)
            used.append(onset)
        return used

    def bridge_bar(self, section: str, start: int, bar: int, level: float, melody_onsets: list[int]) -> None:
        if section == "chorus":  # thirds/sixths under the melody's long notes
            for half in (0, 8):
                if self.rng.random() < 0.7:
                    degree = self.chord(section, bar, half // 8)[self.rng.choice((1, 2))]
                    self.tracks["bridge"].note(start + half * STEP + self.jitter(), 7 * STEP,
                                               self.pitch(degree, 60, 74), self.velocity(62, level, half, 0.5))
            return
        free = [s for s in (8, 10, 12, 14) if all(abs(s - m) > 1 for m in melody_onsets)]
        if bar % 2 == 1 and free:  # fills in the melody's rests at the end of two-bar phrases
            degree = self.chord(section, bar, 1)[0] + self.rng.choice((2, 4))
            for i, onset in enumerate(free[:3]):
                self.tracks["bridge"].note(start + onset * STEP + self.jitter(), 2 * STEP - 12,
                                           self.pitch(degree - i, 62, 77), self.velocity(64, level, onset, 0.6))

    def piano_bar(self, section: str, start: int, bar: int, level: float, last: bool) -> None:
        piano = self.tracks["piano"]
        style = self.accompaniment[section]
        for half in (0, 8):
            degrees = self.chord(section, bar, half // 8)
            chord_start = start + half * STEP
            if half == 8 and degrees == self.chord(section, bar, 0) and style != "ballad":
                continue
            length = 16 if half == 0 and degrees == self.chord(section, bar, 1) else 8
            # sustain pedal: lifted just before the chord and pressed just after it (legato pedalling)
            piano.control(max(chord_start - 10, 0), 64, 0)
            piano.control(chord_start + 30, 64, 127)
            bass = self.pitch(degrees[0], 36, 48)
            piano.note(chord_start + self.jitter(), length * STEP - 20, bass, self.velocity(70, level, half, 0.5))
            if style != "ballad" and length == 16 and self.rng.random() < 0.6:
                piano.note(chord_start + 8 * STEP + self.jitter(), 8 * STEP - 20, bass + 7,
                           self.velocity(60, level, 8, 0.5))
            right = self.voicing(degrees, 53, 68)
            self._right_hand(style, chord_start, length, right, degrees, level, half)
        if last:  # the section's last beat: a passing bass note leads into the next section
            piano.note(start + 14 * STEP + self.jitter(), 2 * STEP - 20,
                       self.pitch(self.chord(section, bar, 1)[0] + 1, 36, 48), self.velocity(58, level, 14, 0.9))

    def _right_hand(self, style: str, at: int, length: int, right: list[int], degrees: list[int], level: float,
                    half: int) -> None:
        piano, rng = self.tracks["piano"], self.rng
        if style == "block":
            for onset in range(0, length, 4):
                for pitch in right:
                    piano.note(at + onset * STEP + rng.randint(-4, 4), 3 * STEP, pitch,
                               self.velocity(56, level, half + onset, 0.5))
        elif style in ("broken", "alberti"):
            order = (0, 2, 1, 2) if style == "alberti" else (0, 1, 2, 1)
            for i, onset in enumerate(range(0, length, 2)):
                pitch = right[order[i % 4] % len(right)]
                piano.note(at + onset * STEP + self.jitter(), 2 * STEP, pitch,
                           self.velocity(52, level, half + onset, 0.5))
        elif style == "ballad":  # left-hand-style spread arpeggio 1-5-8-10 in eighths
            spread = [self.pitch(degrees[0], 43, 55), self.pitch(degrees[2], 48, 60),
                      self.pitch(degrees[0], 52, 64), self.pitch(degrees[1], 55, 67)]
            for i, onset in enumerate(range(2, length, 2)):
                piano.note(at + onset * STEP + self.jitter(), 2 * STEP, spread[i % 4],
                           self.velocity(50, level, half + onset, 0.5))
        else:  # pop comping: syncopated chords
            for onset in (0, 3, 6) if length == 8 else (0, 3, 6, 10, 12):
                for pitch in right:
                    piano.note(at + onset * STEP + rng.randint(-4, 4), 2 * STEP, pitch,
                               self.velocity(54, level, half + onset, 0.5))


def generate_piano_pop_piece(seed: int, target_seconds: float = 40.0) -> PopPiece:
    """One POP909-layout piano arrangement of about `target_seconds` (whole 4/4 bars), deterministic from `seed`."""
    rng = random.Random(seed)
    song = _Song(rng)
    bars = max(6, round(target_seconds * song.bpm / 240.0))
    form = _song_form(bars, rng)
    program = _weighted(rng, PIANO_PROGRAMS)
    melody_program = program if rng.random() < 0.8 else _weighted(rng, PIANO_PROGRAMS)
    reverb = rng.randint(35, 80)
    pans = {"melody": 64 + rng.randint(-8, 8), "bridge": 64 + rng.choice((-1, 1)) * rng.randint(10, 28),
            "piano": 64 + rng.randint(-10, 10)}
    volumes = {"melody": rng.randint(100, 114), "bridge": rng.randint(80, 96), "piano": rng.randint(86, 102)}
    for name, track in song.tracks.items():
        track.program(0, melody_program if name == "melody" else program)
        track.control(0, 7, volumes[name])
        track.control(0, 10, pans[name])
        track.control(0, 91, reverb)

    bar_index = 0
    for section_index, (section, length) in enumerate(form):
        level = SECTION_LEVEL[section] * rng.uniform(0.92, 1.08)
        for bar in range(length):
            start = (bar_index + bar) * BAR_STEPS * STEP
            final = section_index == len(form) - 1 and bar == length - 1
            if final:
                _final_chord(song, start, level)
                continue
            song.piano_bar(section, start, bar, level, last=bar == length - 1)
            if section not in ("intro", "outro"):
                used = song.melody_bar(section, start, bar, level)
                song.bridge_bar(section, start, bar, level, used)
            elif section == "intro" and bar == length - 1:  # pick-up into the first verse
                song.bridge_bar("verse", start, 1, level, [])
        bar_index += length

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(mido.MidiTrack([
        mido.MetaMessage("track_name", name=f"msanii piano pop {seed}", time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.bpm), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
    ]))
    midi.tracks.extend(track.to_midi_track() for track in song.tracks.values())
    info = {"layout": "pop909", "key": song.key, "mode": "minor" if song.minor else "major", "bpm": song.bpm,
            "bars": bars, "form": [f"{name}:{length}" for name, length in form],
            "programs": {"piano": program, "melody": melody_program}, "pans": pans,
            "accompaniment": dict(song.accompaniment),
            "progressions": {k: list(v) for k, v in song.progressions.items()}}
    return PopPiece(midi=midi, seconds=bars * 240.0 / song.bpm, info=info)


def _final_chord(song: _Song, start: int, level: float) -> None:
    """Tonic chord held over the last bar with the pedal down, melody on the tonic."""
    whole = BAR_STEPS * STEP
    piano = song.tracks["piano"]
    piano.control(max(start - 10, 0), 64, 0)
    piano.control(start + 30, 64, 127)
    piano.note(start, whole, song.pitch(0, 36, 48), int(72 * level))
    for pitch in song.voicing([0, 2, 4], 53, 68):
        piano.note(start + song.rng.randint(0, 12), whole, pitch, int(60 * level))
    song.tracks["melody"].note(start, whole, song.pitch(7, 62, 84), int(78 * level))
    piano.control(start + whole - 1, 64, 0)
