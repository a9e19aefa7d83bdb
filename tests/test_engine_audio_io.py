"""Audio files: formats and bit depths are what they say, atomic, never overwritten, never clipped."""
import os

import numpy as np
import pytest
import soundfile as sf

from engine.audio_io import AudioIOError, read_audio, resample, write_audio


def _tone(seconds=0.5, rate=44100, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([amp * np.sin(2 * np.pi * 440 * t), amp * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


@pytest.mark.parametrize("name, depth, fmt, subtype", [
    ("a.wav", "16", "WAV", "PCM_16"), ("a.wav", "24", "WAV", "PCM_24"), ("a.wav", "32f", "WAV", "FLOAT"),
    ("a.flac", "16", "FLAC", "PCM_16"), ("a.flac", "24", "FLAC", "PCM_24"),
])
def test_formats_round_trip(tmp_path, name, depth, fmt, subtype):
    audio = _tone()
    result = write_audio(tmp_path / name, audio, 44100, bit_depth=depth)
    info = sf.info(str(tmp_path / name))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (fmt, subtype, 44100, 2,
                                                                                        audio.shape[1])
    assert not result.limited and result.peak == pytest.approx(0.5, abs=1e-6)
    back = read_audio(tmp_path / name)
    assert back.audio.shape == audio.shape and back.subtype == subtype
    tolerance = {"16": 2e-4, "24": 1e-6, "32f": 0}[depth]
    assert np.abs(back.audio - audio).max() <= tolerance + 1e-7


def test_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "keep.wav"
    write_audio(path, _tone(amp=0.1), 44100)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        write_audio(path, _tone(amp=0.3), 44100)
    assert path.read_bytes() == before
    write_audio(path, _tone(amp=0.3), 44100, overwrite=True)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]  # no temp files left


def test_too_loud_audio_is_lowered_and_reported(tmp_path):
    audio = _tone(amp=1.8)
    result = write_audio(tmp_path / "loud.wav", audio, 44100, bit_depth="32f")
    back = read_audio(tmp_path / "loud.wav").audio
    assert result.limited and result.peak == pytest.approx(1.8, rel=1e-4) and result.gain_db < -5
    assert np.abs(back).max() <= 1.0
    np.testing.assert_allclose(back, audio * (np.abs(back).max() / 1.8), atol=1e-6)  # one gain: shape kept


def test_bad_requests_are_named(tmp_path):
    with pytest.raises(AudioIOError, match="FLAC stores integers"):
        write_audio(tmp_path / "x.flac", _tone(), 44100, bit_depth="32f")
    with pytest.raises(AudioIOError, match="unsupported output format 'mp3'"):
        write_audio(tmp_path / "x.mp3", _tone(), 44100)
    with pytest.raises(AudioIOError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.full((2, 10), np.nan, np.float32), 44100)
    with pytest.raises(AudioIOError, match="output folder does not exist"):
        write_audio(tmp_path / "no" / "x.wav", _tone(), 44100)
    with pytest.raises(AudioIOError, match="not found"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioIOError, match="cannot read"):
        read_audio(tmp_path / "junk.wav")


def test_resample_exact_length_and_pitch():
    audio = _tone(1.0)
    out = resample(audio, 44100, 48000, length=48000)
    assert out.shape == (2, 48000) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[0]))
    assert abs(np.argmax(spectrum) * 48000 / 48000 - 440) <= 1  # the tone keeps its frequency


def test_temp_files_of_killed_writers_are_cleaned_up(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has exited
    stale = tmp_path / f".take.wav.tmp-{dead}"
    stale.write_bytes(b"RIFF partial")
    live = tmp_path / f".take.wav.tmp-{os.getppid()}"  # a running writer's temp is left alone
    live.write_bytes(b"RIFF in progress")
    other = tmp_path / f".other.wav.tmp-{dead}"  # another file's temp is not ours to judge here
    other.write_bytes(b"x")
    write_audio(tmp_path / "take.wav", np.zeros((2, 100), np.float32), 44100)
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "take.wav").is_file()
