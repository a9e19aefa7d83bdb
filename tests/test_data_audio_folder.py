"""AudioFolderDataset on real files of several formats, rates, channel counts and bit depths."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from training.data.audio_folder import AudioFolderDataset, load_audio, rms_db
from training.data.errors import DataError, DataWarning

SR = 44_100


def tone(freq: float, seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    sf.write(root / "mono48k.wav", tone(1000, 2.0, 48_000), 48_000, subtype="PCM_16")
    stereo = np.stack([tone(440, 1.5, SR), tone(660, 1.5, SR, 0.2)], axis=1)
    sf.write(root / "stereo24.wav", stereo, SR, subtype="PCM_24")
    (root / "sub").mkdir()
    sf.write(root / "sub" / "mono22k.flac", tone(300, 1.0, 22_050), 22_050, subtype="PCM_16")
    sf.write(root / "vorbis32k.ogg", tone(500, 1.2, 32_000), 32_000, format="OGG", subtype="VORBIS")
    sf.write(root / "clip.mp3", tone(700, 1.0, SR), SR, format="MP3")
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    sf.write(root / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    (root / "notes.txt").write_text("not audio, ignored")
    return root


@pytest.fixture(scope="module")
def dataset(folder):
    with pytest.warns(DataWarning) as caught:
        ds = AudioFolderDataset(folder, crop_samples=SR // 2)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.wav" in messages and "silent.wav" in messages
    return ds


def test_loads_every_format_and_skips_broken_and_silent(dataset, folder):
    names = sorted(p.name for p in dataset.files)
    assert names == ["clip.mp3", "mono22k.flac", "mono48k.wav", "stereo24.wav", "vorbis32k.ogg"]
    assert sorted(s.path.name for s in dataset.skipped) == ["broken.wav", "silent.wav"]
    assert len(dataset) == 5
    # durations survive resampling: 2 + 1.5 + 1 + 1.2 + 1 s (MP3 adds a little encoder padding)
    assert dataset.seconds == pytest.approx(6.7, abs=0.1)
    assert "5 files" in dataset.describe()


def test_resampled_mono_becomes_identical_stereo_at_44k(dataset):
    index = [p.name for p in dataset.files].index("mono48k.wav")
    audio = dataset.audio(index).numpy()
    assert audio.shape == (2, round(2.0 * SR))
    np.testing.assert_array_equal(audio[0], audio[1])
    assert dominant_hz(audio[0], SR) == pytest.approx(1000, abs=2)
    assert rms_db(audio) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)


def test_24bit_stereo_keeps_channels_apart(dataset, folder):
    index = [p.name for p in dataset.files].index("stereo24.wav")
    audio = dataset.audio(index).numpy()
    original, _ = sf.read(folder / "stereo24.wav", dtype="float32")
    np.testing.assert_allclose(audio, original.T, atol=1.5 / 32767)  # int16 storage
    assert dominant_hz(audio[0], SR) == pytest.approx(440, abs=2)
    assert dominant_hz(audio[1], SR) == pytest.approx(660, abs=2)


def test_int16_cache_uses_half_the_memory_of_float32(dataset):
    assert dataset.memory_bytes == dataset.total_samples * 2 * 2


def test_crops_are_deterministic_for_a_seeded_rng(dataset):
    a = [dataset.sample_crop(np.random.default_rng(7)) for _ in range(3)]
    b = [dataset.sample_crop(np.random.default_rng(7)) for _ in range(3)]
    assert a[0].shape == (2, SR // 2) and a[0].dtype == torch.float32
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    rng = np.random.default_rng(7)
    draws = [dataset.sample_crop(rng) for _ in range(8)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:])
    others = [dataset.sample_crop(np.random.default_rng(seed)) for seed in (8, 9, 10)]
    assert not all(torch.equal(a[0], other) for other in others)


def test_near_silent_crops_are_redrawn(tmp_path):
    # 1 s of tone then 9 s of silence: 90 % of uniform crops would be silent
    audio = np.concatenate([tone(220, 1.0, SR), np.zeros(9 * SR, np.float32)])
    sf.write(tmp_path / "mostly_silent.wav", audio, SR)
    ds = AudioFolderDataset(tmp_path, crop_samples=SR // 4, silence_db=-50.0)
    rng = np.random.default_rng(0)
    levels = [rms_db(ds.sample_crop(rng).numpy()) for _ in range(40)]
    assert min(levels) >= -50.0
    # with the check off (silence_db=-inf) most crops are silent
    loose = AudioFolderDataset(tmp_path, crop_samples=SR // 4, silence_db=-np.inf)
    rng = np.random.default_rng(0)
    silent = sum(rms_db(loose.sample_crop(rng).numpy()) < -50 for _ in range(40))
    assert silent > 20


def test_short_file_is_zero_padded_to_the_crop(tmp_path):
    sf.write(tmp_path / "short.flac", tone(440, 0.1, SR), SR)
    ds = AudioFolderDataset(tmp_path, crop_samples=SR)
    crop = ds.sample_crop(np.random.default_rng(0))
    assert crop.shape == (2, SR)
    assert torch.count_nonzero(crop[:, int(0.1 * SR) + 10:]) == 0
    assert rms_db(crop[:, :4000].numpy()) > -20


def test_louder_than_full_scale_float_file_keeps_its_level(tmp_path):
    sf.write(tmp_path / "hot.wav", tone(440, 1.0, SR, amp=2.0), SR, subtype="FLOAT")
    ds = AudioFolderDataset(tmp_path, crop_samples=1024)
    assert float(ds.audio(0).abs().max()) == pytest.approx(2.0, rel=1e-3)


def test_missing_empty_and_all_corrupt_folders_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        AudioFolderDataset(tmp_path / "nope", crop_samples=1024)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    with pytest.raises(DataError, match="contains no audio files"):
        AudioFolderDataset(empty, crop_samples=1024)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.flac").write_bytes(b"fLaC" + bytes(100))
    (bad / "b.mp3").write_bytes(b"")
    with pytest.warns(DataWarning), pytest.raises(DataError, match=r"(?s)no usable audio.*a\.flac.*b\.mp3"):
        AudioFolderDataset(bad, crop_samples=1024)
    with pytest.raises(DataError, match="not a folder"):
        AudioFolderDataset(bad / "a.flac", crop_samples=1024)


def test_load_audio_names_the_file(tmp_path):
    path = tmp_path / "x.ogg"
    path.write_bytes(b"OggS" + bytes(50))
    with pytest.raises(DataError, match="x.ogg"):
        load_audio(path)


def test_oversample_draws_matching_files_more_often_and_rejects_typos(tmp_path):
    """`oversample` multiplies the draw weight of the files a glob matches (the first matching glob counts); a glob
    that matches nothing or a factor that is not positive is a DataError, not a silent return to the old mix."""
    for name, freq in (("m21-a.wav", 440), ("pop-b.wav", 660), ("pop-c.wav", 880)):
        sf.write(tmp_path / name, tone(freq, 1.0, SR), SR)
    plain = AudioFolderDataset(tmp_path, 1024)
    heavy = AudioFolderDataset(tmp_path, 1024, oversample={"m21-*": 2.0, "*": 0.5})
    rng = np.random.default_rng(0)
    drawn = [heavy.files[heavy._draw_location(rng)[0]].name for _ in range(4000)]
    # weights 2 : 0.5 : 0.5 (equal lengths) -> 2/3 of the draws on m21-a
    assert drawn.count("m21-a.wav") / len(drawn) == pytest.approx(2 / 3, abs=0.03)
    assert heavy.draw_factors.tolist() == [2.0, 0.5, 0.5]
    assert "oversampled: m21-*=2 (67% of draws), *=0.5 (100% of draws)" in heavy.describe()
    assert "oversampled" not in plain.describe() and plain.draw_factors.tolist() == [1.0, 1.0, 1.0]
    assert plain.tempo_summary() == heavy.tempo_summary()  # the tempo prior stays by length: it is what real music has

    with pytest.raises(DataError, match=r"no file in .* matches 'bach-\*'"):
        AudioFolderDataset(tmp_path, 1024, oversample={"bach-*": 2.0})
    with pytest.raises(DataError, match="must be a positive number"):
        AudioFolderDataset(tmp_path, 1024, oversample={"m21-*": 0})
