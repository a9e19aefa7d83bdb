"""The offline corpus: procedural pop MIDI, music21 windows, held-out split, FluidSynth build and its CLI."""
from __future__ import annotations

import argparse
import io
import json
import random
from collections import Counter

import mido
import pytest
import soundfile as sf

from training.data.audio_folder import AudioFolderDataset
from training.data.commands import add_data_subcommands
from training.data.corpus import PlannedPiece, assign_splits, build_corpus, heldout_score, plan_corpus
from training.data.errors import DataError
from training.data.music21_source import orchestrate, scale_tempo, window_midi, work_pieces
from training.data.procedural import generate_pop_piece, midi_to_bytes


def channel_events(midi: mido.MidiFile, kind: str) -> list[mido.Message]:
    return [m for track in midi.tracks for m in track if m.type == kind]


def test_pop_pieces_are_deterministic_and_varied():
    pieces = [generate_pop_piece(seed, 40.0) for seed in range(12)]
    assert pieces[3].to_bytes() == generate_pop_piece(3, 40.0).to_bytes()
    assert len({p.to_bytes() for p in pieces}) == 12
    for piece in pieces:
        assert 80 <= piece.info["bpm"] <= 140
        assert 20.0 <= piece.seconds <= 60.0
        reparsed = mido.MidiFile(file=io.BytesIO(piece.to_bytes()))
        assert abs(reparsed.length - piece.seconds) < 0.05
        notes = channel_events(piece.midi, "note_on")
        assert {m.channel for m in notes} >= {0, 1, 2, 9}  # melody, comp, bass, drums on channel 10
        assert {m.note for m in notes if m.channel == 9} & {36, 38, 37, 39}  # kick/snare family
        pans = [m.value for m in channel_events(piece.midi, "control_change") if m.control == 10]
        assert len(pans) == 5 and len(set(pans)) >= 3  # parts placed across the stereo field
    programs = Counter(p.info["programs"]["melody"] for p in pieces)
    assert len(programs) >= 6
    assert {p.info["mode"] for p in pieces} == {"major", "minor"}


def test_window_and_tempo_of_a_midi_file():
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))  # 2 beats per second
    track.append(mido.Message("program_change", channel=0, program=5, time=0))
    for i in range(20):  # one quarter note per beat for 10 s
        track.append(mido.Message("note_on", channel=0, note=60 + i, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=0, note=60 + i, velocity=0, time=480))
    part = window_midi(midi, 2.0, 5.0)
    assert part.length == pytest.approx(3.0, abs=0.01)
    onsets = [m.note for m in channel_events(part, "note_on")]
    assert onsets == list(range(64, 70))  # the notes that start inside the window
    assert channel_events(part, "program_change")[0].program == 5  # state before the window is carried
    assert scale_tempo(midi, 2.0).length == pytest.approx(midi.length / 2, abs=0.01)


def test_music21_work_becomes_orchestrated_deterministic_windows():
    first = work_pieces("bach/bwv10.7.mxl", seed=11)
    again = work_pieces("bach/bwv10.7.mxl", seed=11)
    assert [midi_to_bytes(m) for m, _ in first] == [midi_to_bytes(m) for m, _ in again]
    midi, info = first[0]
    assert 20.0 <= midi.length <= 60.0
    channels = {m.channel for m in channel_events(midi, "note_on")}
    assert len(channels) == 4 and 9 not in channels  # SATB, each part on its own channel
    assert len(info["programs"]) == 4 and len(set(info["pans"])) == 4
    assert not channel_events(midi, "lyrics")


def test_orchestrate_handles_a_single_part():
    midi = mido.MidiFile()
    track = mido.MidiTrack([mido.Message("note_on", channel=0, note=60, velocity=80, time=0),
                            mido.Message("note_off", channel=0, note=60, velocity=0, time=480)])
    midi.tracks.append(track)
    result, info = orchestrate(midi, random.Random(0))
    assert info["pans"] == [64] and len(channel_events(result, "program_change")) == 1


def test_heldout_split_is_by_work_hash_and_never_empty():
    def piece(work: str, index: int = 0) -> PlannedPiece:
        return PlannedPiece(f"{work}-w{index}", work, "test", b"", 30.0, {})

    pieces = [piece(f"work-{i}") for i in range(200)] + [piece("work-7", 1)]
    assign_splits(pieces, 0.1)
    held = {p.work for p in pieces if p.split == "heldout"}
    assert 8 <= len(held) <= 35  # about 10 % of 200 works
    assert held == {p.work for p in pieces if heldout_score(p.work) < 0.1}
    assert len({p.split for p in pieces if p.work == "work-7"}) == 1  # windows of one work stay together
    tiny = [piece("a"), piece("b")]
    assign_splits(tiny, 0.1)
    assert sorted(p.split for p in tiny) == ["heldout", "train"]
    with pytest.raises(DataError, match="held-out fraction"):
        assign_splits(tiny, 1.0)


def test_plan_is_byte_identical_for_a_seed():
    a = plan_corpus(minutes=3, seed=5, music21_fraction=0.0)
    b = plan_corpus(minutes=3, seed=5, music21_fraction=0.0)
    c = plan_corpus(minutes=3, seed=6, music21_fraction=0.0)
    assert [(p.id, p.split, p.midi_bytes) for p in a.pieces] == [(p.id, p.split, p.midi_bytes) for p in b.pieces]
    assert [p.midi_bytes for p in a.pieces] != [p.midi_bytes for p in c.pieces]
    assert 170 <= a.seconds <= 200
    assert all(18.0 <= p.nominal_seconds <= 60.0 for p in a.pieces)  # 20-55 s, rounded to whole bars (<= 3.6 s)
    with pytest.raises(DataError):
        plan_corpus(minutes=0)


def test_build_corpus_renders_splits_writes_manifest_and_resumes(tmp_path):
    out = tmp_path / "corpus"
    lines = []
    manifest = build_corpus(out, minutes=1.5, seed=2, jobs=2, music21_fraction=0.0, log=lines.append)
    on_disk = json.loads((out / "corpus.json").read_text())
    assert on_disk == manifest
    assert manifest["seed"] == 2 and manifest["pieces_count"] >= 2 and not manifest["failures"]
    assert manifest["render_seconds"] > 0 and manifest["hours"] == pytest.approx(manifest["seconds"] / 3600, abs=1e-4)
    assert manifest["splits"]["heldout"]["pieces"] >= 1 and manifest["splits"]["train"]["pieces"] >= 1
    total = 0.0
    for entry in manifest["pieces"]:
        wav = out / entry["wav"]
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels) == (44_100, 2)
        assert info.duration == pytest.approx(entry["seconds"], abs=1e-3)
        assert wav.parent.name == entry["split"] and (out / entry["midi"]).is_file()
        total += info.duration
    assert manifest["seconds"] == pytest.approx(total, abs=0.01)
    train_names = {p.name for p in (out / "train").iterdir()}
    held_names = {p.name for p in (out / "heldout").iterdir()}
    assert train_names and held_names and not train_names & held_names

    dataset = AudioFolderDataset(out / "train", crop_samples=44_100)  # what the trainer reads
    assert dataset.seconds == pytest.approx(manifest["splits"]["train"]["seconds"], abs=0.01)
    with pytest.raises(DataError, match="corpus folder"):  # pointing at the whole corpus would train on held-out
        AudioFolderDataset(out, crop_samples=44_100)

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    again = build_corpus(out, minutes=1.5, seed=2, jobs=1, music21_fraction=0.0, log=lines.append)
    assert again["reused"] == manifest["pieces_count"] and again["rendered_now"] == 0
    assert again["render_seconds_total"] >= manifest["render_seconds_total"] == manifest["render_seconds"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before
    with pytest.raises(DataError, match="already holds a corpus"):
        build_corpus(out, minutes=1.5, seed=3, music21_fraction=0.0, log=lines.append)

    # --overwrite with other settings: files of the old build that are not in the new one are removed,
    # so no piece is left behind in train/ after moving to heldout/
    (out / "train" / "mine.wav").write_bytes(b"user file, not listed in corpus.json")
    rebuilt = build_corpus(out, minutes=0.5, seed=2, heldout_fraction=0.5, music21_fraction=0.0, overwrite=True,
                           log=lines.append)
    listed = {e["wav"] for e in rebuilt["pieces"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.wav")}
    assert on_disk == listed | {"train/mine.wav"}


def test_make_corpus_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="msanii-train")
    add_data_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["make-corpus", str(tmp_path / "c"), "--minutes", "0.5", "--seed", "1",
                              "--music21-fraction", "0", "--heldout-fraction", "0.5", "--jobs", "2"])
    assert args.func(args) == 0
    assert "pieces" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert manifest["settings"]["heldout_fraction"] == 0.5
    args = parser.parse_args(["make-corpus", str(tmp_path / "d"), "--minutes", "1", "--heldout-fraction", "1.5"])
    assert args.func(args) == 2
    assert "held-out fraction" in capsys.readouterr().err
    args = parser.parse_args(["make-corpus", str(tmp_path / "e"), "--minutes", "1",
                              "--soundfont", str(tmp_path / "none.sf2")])
    assert args.func(args) == 2
    assert "none.sf2 does not exist" in capsys.readouterr().err


def test_composer_draw_deals_the_shuffled_works_round_robin_over_collections():
    """--music21-draw composers: the first N works come from N collections while any are left, each collection
    keeps its (shuffled) order, nothing is lost or repeated, and the deal is seeded."""
    from training.data.corpus import composer_order

    works = [f"monteverdi/m{i}.mxl" for i in range(7)] + ["bach/b1.mxl", "bach/b2.mxl", "joplin/j1.mxl"]
    dealt = composer_order(works, random.Random(3))
    assert sorted(dealt) == sorted(works)
    assert {w.split("/")[0] for w in dealt[:3]} == {"monteverdi", "bach", "joplin"}
    assert [w for w in dealt if w.startswith("monteverdi")] == [f"monteverdi/m{i}.mxl" for i in range(7)]
    assert dealt == composer_order(works, random.Random(3))
    assert composer_order([], random.Random(0)) == []
    with pytest.raises(DataError, match="unknown music21 draw 'by-era'"):
        plan_corpus(1.0, music21_draw="by-era")


def test_composer_draw_plans_music21_from_several_collections():
    plan = plan_corpus(4.0, seed=0, music21_fraction=0.9, music21_draw="composers")
    collections = {p.source.split(":", 1)[1].split("/")[0] for p in plan.pieces if p.source.startswith("music21:")}
    assert len(collections) >= 3, collections
