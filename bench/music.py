"""A short piece of real instrument audio for phase measurements: a MIDI arrangement (piano chords, bass,
melody, drums) written with mido and rendered by FluidSynth with the GM soundfont."""
from __future__ import annotations

import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from training.data.midi import render_midi

_CHORDS = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]  # C Am F G
_MELODY = [72, 74, 76, 79, 77, 76, 74, 72, 69, 71, 72, 74, 76, 74, 72, 71]


def write_midi(path: Path, seconds: float, bpm: float = 112.0) -> Path:
    """A pop-style loop long enough to cover `seconds`."""
    ticks = 480
    midi = mido.MidiFile(ticks_per_beat=ticks)
    beats = int(seconds * bpm / 60) + 4
    tracks = {name: mido.MidiTrack() for name in ("piano", "bass", "lead", "drums")}
    for track in tracks.values():
        midi.tracks.append(track)
    tracks["piano"].append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    for channel, program, name in ((0, 0, "piano"), (1, 33, "bass"), (2, 73, "lead")):
        tracks[name].append(mido.Message("program_change", channel=channel, program=program, time=0))

    def note(track, channel, pitch, start, length, velocity, events):
        events.append((start, track, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((start + length, track, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))

    events: list = []
    for beat in range(0, beats, 4):
        chord = _CHORDS[(beat // 4) % len(_CHORDS)]
        for b in range(4):
            for pitch in chord:
                note("piano", 0, pitch, (beat + b) * ticks, ticks - 40, 70, events)
            note("bass", 1, chord[0] - 24, (beat + b) * ticks, ticks // 2, 90, events)
    for i in range(beats * 2):
        note("lead", 2, _MELODY[i % len(_MELODY)], i * ticks // 2, ticks // 2 - 20, 85, events)
    for beat in range(beats):
        note("drums", 9, 36 if beat % 2 == 0 else 38, beat * ticks, ticks // 4, 100, events)
        for half in range(2):
            note("drums", 9, 42, beat * ticks + half * ticks // 2, ticks // 8, 60, events)
    for name, track in tracks.items():
        now = 0
        for start, _, msg in sorted((e for e in events if e[1] == name), key=lambda e: (e[0], e[2].type == "note_on")):
            track.append(msg.copy(time=start - now))
            now = start
    midi.save(str(path))
    return path


def music_snippet(seconds: float = 10.0, sample_rate: int = 44_100) -> np.ndarray:
    """Rendered stereo music, float32 [2, round(seconds * sample_rate)] starting after the first bar."""
    with tempfile.TemporaryDirectory(prefix="msanii-bench-") as tmp:
        mid = write_midi(Path(tmp) / "piece.mid", seconds + 4)
        wav = Path(tmp) / "piece.wav"
        render_midi(mid, wav, sample_rate=sample_rate)
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    start = int(2.0 * rate)
    n = round(seconds * rate)
    return np.ascontiguousarray(audio[start:start + n].T)
