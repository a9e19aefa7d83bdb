"""FluidSynth rendering of MIDI files written by the test (real `fluidsynth`, real GM soundfont)."""
from __future__ import annotations

import argparse

import mido
import numpy as np
import pytest
import soundfile as sf

from training.data.audio_folder import rms_db
from training.data.commands import add_data_subcommands
from training.data.errors import DataError
from training.data.midi import (find_soundfont, load_midi, override_program, render_midi, render_midi_folder)


def write_melody(path, program: int = 0, notes=(60, 64, 67, 72, 67, 64), beat_ticks: int = 240,
                 drums: bool = False) -> None:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    track.append(mido.Message("program_change", channel=0, program=program, time=0))
    for note in notes:
        track.append(mido.Message("note_on", channel=0, note=note, velocity=100, time=0))
        if drums:
            track.append(mido.Message("note_on", channel=9, note=36, velocity=110, time=0))
        track.append(mido.Message("note_off", channel=0, note=note, velocity=0, time=beat_ticks))
    midi.save(str(path))


def band_energies(path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32")
    mono = audio.mean(axis=1)[: rate]  # first second: same notes in every render
    spectrum = np.abs(np.fft.rfft(mono, n=8192)) ** 2
    edges = np.geomspace(50, 16000, 25) * 8192 / rate
    bands = np.array([spectrum[int(a):int(b)].sum() for a, b in zip(edges[:-1], edges[1:])])
    return 10 * np.log10(bands / bands.sum() + 1e-12)


@pytest.fixture(scope="module")
def soundfont():
    return find_soundfont()


def test_renders_a_test_made_midi_to_non_silent_stereo_44k(tmp_path, soundfont):
    write_melody(tmp_path / "tune.mid")
    result = render_midi(tmp_path / "tune.mid", tmp_path / "tune.wav", soundfont)
    info = sf.info(str(result.wav))
    assert (info.samplerate, info.channels, info.subtype) == (44_100, 2, "PCM_16")
    audio, _ = sf.read(str(result.wav), dtype="float32")
    assert rms_db(audio) > -35.0
    assert np.max(np.abs(audio)) == pytest.approx(10 ** (-1 / 20), abs=2e-3)  # peak-normalised to -1 dBFS
    assert 1.5 <= result.seconds <= 1.5 + 3.0  # 6 eighth notes at 120 BPM plus a release tail
    assert result.seconds == pytest.approx(info.duration, abs=1e-3)
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed, not left behind


def test_program_override_changes_the_sound(tmp_path, soundfont):
    write_melody(tmp_path / "tune.mid", program=0)
    render_midi(tmp_path / "tune.mid", tmp_path / "as_is.wav", soundfont)
    render_midi(tmp_path / "tune.mid", tmp_path / "piano.wav", soundfont, program=0)
    render_midi(tmp_path / "tune.mid", tmp_path / "flute.wav", soundfont, program=73)
    same = np.abs(band_energies(tmp_path / "as_is.wav") - band_energies(tmp_path / "piano.wav")).mean()
    other = np.abs(band_energies(tmp_path / "as_is.wav") - band_energies(tmp_path / "flute.wav")).mean()
    assert same < 0.5  # forcing the program the file already uses changes nothing
    assert other > 3.0  # a flute has a very different spectral envelope from a piano


def test_override_keeps_drums_and_sets_every_melodic_channel():
    midi = mido.MidiFile()
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("program_change", channel=9, program=25, time=0))
    track.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=0))
    track.append(mido.Message("note_on", channel=3, note=60, velocity=100, time=0))  # no program change at all
    track.append(mido.Message("program_change", channel=3, program=10, time=10))
    changed = override_program(midi, 40)
    programs = {(m.channel, m.program) for m in changed.tracks[0] if m.type == "program_change"}
    assert programs == {(9, 25), (3, 40)}
    with pytest.raises(DataError, match="0-127"):
        override_program(midi, 128)


def test_never_overwrites_unless_asked(tmp_path, soundfont):
    write_melody(tmp_path / "tune.mid", notes=(60,))
    (tmp_path / "tune.wav").write_bytes(b"precious")
    with pytest.raises(DataError, match="already exists"):
        render_midi(tmp_path / "tune.mid", tmp_path / "tune.wav", soundfont)
    assert (tmp_path / "tune.wav").read_bytes() == b"precious"
    render_midi(tmp_path / "tune.mid", tmp_path / "tune.wav", soundfont, overwrite=True)
    assert sf.info(str(tmp_path / "tune.wav")).channels == 2


def test_bad_inputs_name_the_problem(tmp_path, soundfont):
    (tmp_path / "junk.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00")
    with pytest.raises(DataError, match="junk.mid: not a valid MIDI file"):
        render_midi(tmp_path / "junk.mid", tmp_path / "junk.wav", soundfont)
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(str(tmp_path / "empty.mid"))
    with pytest.raises(DataError, match="no notes"):
        load_midi(tmp_path / "empty.mid")
    write_melody(tmp_path / "ok.mid")
    with pytest.raises(DataError, match="soundfont .*missing.sf2 does not exist"):
        render_midi(tmp_path / "ok.mid", tmp_path / "ok.wav", tmp_path / "missing.sf2")
    (tmp_path / "fake.sf2").write_bytes(b"not a soundfont at all")
    with pytest.raises(DataError, match="soundfont"):
        render_midi(tmp_path / "ok.mid", tmp_path / "ok.wav", tmp_path / "fake.sf2")
    assert not (tmp_path / "ok.wav").exists()


def test_folder_reports_failures_and_renders_the_rest(tmp_path, soundfont):
    src = tmp_path / "midi"
    (src / "album").mkdir(parents=True)
    write_melody(src / "one.mid", program=0)
    write_melody(src / "album" / "two.midi", program=56, drums=True)
    (src / "broken.mid").write_bytes(b"this is not MIDI")
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(str(src / "silent.mid"))
    out = tmp_path / "wav"
    seen = []
    report = render_midi_folder(src, out, soundfont, progress=lambda path, status: seen.append((path.name, status)))
    assert sorted(r.wav.relative_to(out).as_posix() for r in report.rendered) == ["album/two.wav", "one.wav"]
    assert sorted(f.midi.name for f in report.failed) == ["broken.mid", "silent.mid"]
    assert any("broken.mid" in f.error and "not a valid MIDI" in f.error for f in report.failed)
    assert not report.ok and len(seen) == 4
    for rendered in report.rendered:
        audio, rate = sf.read(str(rendered.wav))
        assert rate == 44_100 and audio.shape[1] == 2 and rms_db(audio) > -40
    again = render_midi_folder(src, out, soundfont)  # re-run: finished files are kept, not re-rendered
    assert len(again.skipped_existing) == 2 and not again.rendered and len(again.failed) == 2


def test_folder_errors_that_stop_the_batch(tmp_path, soundfont):
    with pytest.raises(DataError, match="does not exist"):
        render_midi_folder(tmp_path / "nowhere", tmp_path / "out", soundfont)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MIDI files"):
        render_midi_folder(tmp_path / "empty", tmp_path / "out", soundfont)


def test_render_midi_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="msanii-train")
    add_data_subcommands(parser.add_subparsers(dest="command", required=True))
    src = tmp_path / "midi"
    src.mkdir()
    write_melody(src / "good.mid", notes=(60, 62))
    (src / "bad.mid").write_bytes(b"nope")
    args = parser.parse_args(["render-midi", str(src), str(tmp_path / "out"), "--program", "40"])
    assert args.func(args) == 1  # one file failed, the other was rendered
    captured = capsys.readouterr()
    assert "bad.mid" in captured.err and "rendered 1 file(s)" in captured.out
    assert sf.info(str(tmp_path / "out" / "good.wav")).samplerate == 44_100
    args = parser.parse_args(["render-midi", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert args.func(args) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["render-midi", str(src), str(tmp_path / "out"), "--program", "200"])
