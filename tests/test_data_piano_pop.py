"""The default corpus's music: POP909-layout piano arrangements and music21 works on the piano palette."""
from __future__ import annotations

import io
import random
from collections import Counter

import mido
import pytest

from training.data.corpus import plan_corpus
from training.data.errors import DataError
from training.data.music21_source import orchestrate, work_pieces
from training.data.piano_pop import PIANO_PROGRAMS, generate_piano_pop_piece
from training.data.procedural import midi_to_bytes

PIANO_FAMILY = {program for program, _ in PIANO_PROGRAMS}


def events(midi: mido.MidiFile, kind: str) -> list[mido.Message]:
    return [m for track in midi.tracks for m in track if m.type == kind]


def test_piano_pop_pieces_have_the_pop909_layout_and_are_deterministic():
    pieces = [generate_piano_pop_piece(seed, 40.0) for seed in range(16)]
    assert pieces[5].to_bytes() == generate_piano_pop_piece(5, 40.0).to_bytes()
    assert len({p.to_bytes() for p in pieces}) == 16
    for piece in pieces:
        names = [t.name for t in piece.midi.tracks[1:]]
        assert names == ["MELODY", "BRIDGE", "PIANO"]  # POP909's three tracks
        notes = events(piece.midi, "note_on")
        assert {m.channel for m in notes} == {0, 1, 2} and 9 not in {m.channel for m in notes}  # no drums
        assert {m.program for m in events(piece.midi, "program_change")} <= PIANO_FAMILY
        pedal = [m.value for m in events(piece.midi, "control_change") if m.control == 64]
        assert pedal.count(127) >= piece.info["bars"] and pedal.count(0) >= pedal.count(127)  # pedal per chord
        velocities = [m.velocity for m in notes]
        assert max(velocities) - min(velocities) >= 30  # dynamics, not one velocity
        reparsed = mido.MidiFile(file=io.BytesIO(piece.to_bytes()))
        assert abs(reparsed.length - piece.seconds) < 0.3
        assert 20.0 <= piece.seconds <= 60.0
    forms = [p.info["form"] for p in pieces]
    assert sum(any(s.startswith("chorus") for s in f) for f in forms) >= 12  # songs reach a chorus
    assert {p.info["mode"] for p in pieces} == {"major", "minor"}
    assert len({p.info["bpm"] for p in pieces}) >= 10
    assert Counter(p.info["programs"]["piano"] for p in pieces).most_common(1)[0][0] == 0  # the grand dominates


def test_music21_on_the_piano_palette_is_one_keyboard_with_performed_velocities():
    midi, info = work_pieces("bach/bwv10.7.mxl", seed=11, palette="piano")[0]
    assert set(info["programs"]) <= PIANO_FAMILY and len(set(info["programs"])) == 1
    velocities = [m.velocity for m in events(midi, "note_on") if m.velocity]
    assert len(set(velocities)) >= 10
    band, band_info = work_pieces("bach/bwv10.7.mxl", seed=11, palette="band")[0]
    assert midi_to_bytes(band) != midi_to_bytes(midi)
    single = mido.MidiFile()
    single.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=0, note=60, velocity=80, time=0),
                                         mido.Message("note_off", channel=0, note=60, velocity=0, time=480)]))
    _, one = orchestrate(single, random.Random(0), palette="piano")
    assert one["pans"] == [64]


def test_plan_palettes():
    piano = plan_corpus(minutes=2, seed=1, music21_fraction=0.0)
    band = plan_corpus(minutes=2, seed=1, music21_fraction=0.0, palette="band")
    assert all(p.info.get("layout") == "pop909" for p in piano.pieces)
    assert all("drums" in p.info["programs"] for p in band.pieces)
    with pytest.raises(DataError, match="palette"):
        plan_corpus(minutes=2, palette="orchestra")
