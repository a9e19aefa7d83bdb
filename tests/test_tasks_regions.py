"""Regions (seconds, bars/beats), equal-power crossfades, native-sample IO and the boundary measure."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.boundary import loop_wrap_audio, measure_boundaries
from engine.dsp.crossfade import blend_into_region, crossfade, equal_power_curves, fade_edge
from engine.regions import (BarBeat, BarsLength, Region, RegionError, SampleRegion, Tempo, length_seconds,
                            parse_length, parse_position, parse_region, resolve_regions)
from engine.audio_io import (AudioIOError, float_to_samples, output_layout, read_native, samples_to_float,
                              write_native)


# ---- regions ----
def test_bars_and_beats_convert_once_to_samples():
    tempo = Tempo.parse(120, "4/4")
    assert BarBeat(1, 1).seconds(tempo) == 0.0
    assert BarBeat(2, 1).seconds(tempo) == pytest.approx(2.0)
    assert BarBeat(3, 2.5).seconds(tempo) == pytest.approx(4.75)
    six_eight = Tempo.parse(90, "6/8", origin_s=0.5)  # quarter = 90 bpm, eighth-note beats, music starts at 0.5 s
    assert six_eight.beat_seconds == pytest.approx(60 / 90 / 2)
    assert BarBeat(2, 1).seconds(six_eight) == pytest.approx(0.5 + 6 * 60 / 90 / 2)
    regions = resolve_regions([Region(BarBeat(2, 1), BarBeat(3, 1))], 48_000 * 10, 48_000, tempo)
    assert regions == [SampleRegion(96_000, 192_000)]
    assert length_seconds(BarsLength(2, 2), tempo) == pytest.approx(5.0)


def test_region_text_forms():
    assert parse_position("12.5") == 12.5 and parse_position("12.5s") == 12.5
    assert parse_position("5:2.5") == BarBeat(5, 2.5) and parse_position("5b") == BarBeat(5, 1.0)
    assert parse_region("5:1-9:1") == Region(BarBeat(5, 1), BarBeat(9, 1))
    assert parse_region("0.25-1.75") == Region(0.25, 1.75)
    assert parse_length("4b") == BarsLength(4.0) and parse_length("2:3") == BarsLength(2.0, 3.0)
    assert parse_length("8s") == 8.0
    for bad in ("abc", "1-2-3", "-", "5:x"):
        with pytest.raises(RegionError):
            parse_region(bad) if "-" in bad else parse_position(bad)


@pytest.mark.parametrize("regions, message", [
    ([Region(2.0, 1.0)], "reversed"),
    ([Region(1.0, 1.0)], "empty"),
    ([Region(-0.5, 1.0)], "before the beginning"),
    ([Region(9.0, 10.5)], "after the end"),
    ([Region(1.0, 3.0), Region(2.5, 4.0)], "overlaps"),
    ([Region(1.0, 1.004)], "shorter than"),
    ([], "no region"),
    ([Region(BarBeat(2, 1), BarBeat(3, 1))], "needs a tempo"),
])
def test_invalid_regions_are_named(regions, message):
    with pytest.raises(RegionError, match=message):
        resolve_regions(regions, 441_000, 44_100)


def test_touching_regions_merge_and_sort():
    out = resolve_regions([Region(3.0, 4.0), Region(1.0, 2.0), Region(2.0, 2.5)], 441_000, 44_100)
    assert out == [SampleRegion(44_100, 110_250), SampleRegion(132_300, 176_400)]


def test_bad_tempo_is_rejected():
    with pytest.raises(RegionError, match="BPM"):
        Tempo(0)
    with pytest.raises(RegionError, match="denominator"):
        Tempo.parse(120, "4/3")
    with pytest.raises(RegionError, match="beat 5"):
        BarBeat(1, 5).seconds(Tempo(120))


# ---- crossfades ----
def test_equal_power_crossfade_keeps_power_and_any_leading_dims():
    fade_in, fade_out = equal_power_curves(256)
    np.testing.assert_allclose(fade_in ** 2 + fade_out ** 2, 1.0, atol=1e-12)
    assert np.all(np.diff(fade_in) > 0) and 0 < fade_in[0] < 0.01 and 0.99 < fade_in[-1] < 1
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 2, 20_000)), rng.standard_normal((3, 2, 20_000))
    mixed = crossfade(a, b)
    assert mixed.shape == a.shape
    # uncorrelated signals: the power stays ~1 through the fade (a linear fade dips to 0.5 in the middle)
    middle = mixed[..., 9_000:11_000]
    assert np.mean(middle ** 2) == pytest.approx(1.0, abs=0.06)
    t = crossfade(torch.zeros(2, 64), torch.ones(2, 64))
    assert isinstance(t, torch.Tensor) and t.shape == (2, 64)


def test_blend_into_region_starts_and_ends_on_the_original():
    original = np.ones((2, 1000))
    new = -np.ones((2, 1000))
    out = blend_into_region(original, new, fade=100)
    assert out[0, 0] > 0.99 and out[0, -1] > 0.99  # edges continue the original
    np.testing.assert_array_equal(out[:, 100:900], new[:, 100:900])
    short = blend_into_region(original[:, :40], new[:, :40], fade=100)  # short region: fades shrink to n/4
    assert short[0, 0] > 0.9 and short[0, 20] == -1.0
    edge = fade_edge(np.ones((1, 50)), 10, "end")
    assert edge[0, -1] < 0.1 and edge[0, 0] == 1.0
    with pytest.raises(ValueError):
        fade_edge(np.ones((1, 50)), 10, "middle")


# ---- native samples ----
@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
                                          ("FLAC", "PCM_24"), ("WAV", "PCM_32")])
def test_native_read_write_is_bit_exact(tmp_path, fmt, subtype):
    rng = np.random.default_rng(1)
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(str(path), rng.uniform(-0.9, 0.9, (4800, 2)), 48_000, subtype=subtype, format=fmt)
    src = read_native(path)
    assert (src.sample_rate, src.subtype, src.channels) == (48_000, subtype, 2)
    out = src.samples.copy()
    out[1000:2000] = src.quantise(rng.uniform(-1, 1, (2, 1000)).astype(np.float32))
    fmt_out, sub_out = output_layout(src)
    assert (fmt_out, sub_out) == (fmt, subtype)
    dest = write_native(tmp_path / f"out.{fmt.lower()}", out, src.sample_rate, fmt_out, sub_out)
    back = read_native(dest)
    np.testing.assert_array_equal(back.samples, out)  # every sample, old and new, exactly as written
    with pytest.raises(AudioIOError, match="already exists"):
        write_native(dest, out, src.sample_rate, fmt_out, sub_out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, dest.name])  # no temp files left


def test_quantise_matches_bit_depth_and_lossy_inputs_default_to_float_wav(tmp_path):
    x = np.array([0.5, -1.0, 1.5, 1 / 3])
    q24 = float_to_samples(x, "PCM_24")
    assert q24.dtype == np.int32 and np.all(q24 % 256 == 0)  # low 8 bits empty: exact in a 24-bit file
    assert samples_to_float(q24)[2] < 1.0  # clipped, not wrapped
    path = tmp_path / "in.ogg"
    sf.write(str(path), np.zeros((4410, 1)) + 0.1, 44_100, format="OGG", subtype="VORBIS")
    src = read_native(path)
    assert not src.lossless and output_layout(src) == ("WAV", "FLOAT")
    assert output_layout(src, bit_depth=24) == ("WAV", "PCM_24")
    with pytest.raises(AudioIOError, match="bit depth"):
        output_layout(src, bit_depth=12)
    with pytest.raises(AudioIOError, match="does not exist"):
        read_native(tmp_path / "missing.wav")


# ---- boundary measure ----
def _tone(n, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
            + 0.01 * rng.standard_normal(n))[None].repeat(2, 0)


def test_boundary_measure_flags_clicks_and_cuts_but_not_clean_seams():
    sr = 48_000
    x = _tone(sr * 2, sr)
    clean = measure_boundaries(x, [sr], sr, points=128)
    assert clean.worst_step_percentile < 99 and clean.worst_flux_percentile < 99
    clicked = x.copy()
    seam = sr + 55  # near a crest of the 220 Hz tone
    clicked[:, seam:] *= -1  # polarity flip: a hard step
    report = measure_boundaries(clicked, [seam], sr, reference=x, points=128)
    assert report.worst_step_percentile == 100.0 and report.worst_step_ratio > 3
    cut = np.concatenate([x[:, :sr], 0.3 * np.random.default_rng(2).standard_normal((2, sr))], axis=1)
    report = measure_boundaries(cut, [sr], sr, reference=x, points=128)
    assert report.worst_flux_percentile == 100.0 and report.worst_flux_ratio > 2
    d = report.to_dict()
    assert d["seams"][0]["position"] == sr and d["reference_points"] == 128


def test_loop_wrap_seam():
    sr = 44_100
    period = 441 * 100  # 1 s, a whole number of 100 Hz-ish periods for 220/330 Hz tones
    loop = _tone(period, sr)
    wrapped, seam = loop_wrap_audio(loop, 8192)
    assert wrapped.shape[-1] == 2 * 8192 and seam == 8192
    assert measure_boundaries(wrapped, [seam], sr, reference=loop, points=64).worst_step_percentile < 99
    broken, seam = loop_wrap_audio(loop[:, :period - 37], 8192)  # not a whole period: the wrap jumps
    assert measure_boundaries(broken, [seam], sr, reference=loop, points=64).worst_step_ratio > 1.5


def test_new_material_is_dithered_at_16_bit_only():
    ramp = np.linspace(-0.5, 0.5, 10_000)[None]
    plain, dithered = float_to_samples(ramp, "PCM_16"), float_to_samples(ramp, "PCM_16", dither=True)
    diff = dithered.astype(np.int64) - plain.astype(np.int64)
    assert 0 < np.abs(diff).max() <= 2 and abs(diff.mean()) < 0.05  # +-1 LSB noise, no offset
    np.testing.assert_array_equal(float_to_samples(ramp, "PCM_16", dither=True), dithered)  # seeded
    np.testing.assert_array_equal(float_to_samples(ramp, "PCM_24", dither=True), float_to_samples(ramp, "PCM_24"))


def test_boundary_reference_can_span_both_sides_of_a_seam():
    """A seam from a smooth tone into bright noise is no click if the noise's own steps are that big."""
    sr = 44_100
    tone = _tone(sr, sr)
    noise = 0.3 * np.random.default_rng(5).standard_normal((2, sr))
    joined = np.concatenate([tone, noise], axis=1)
    against_tone = measure_boundaries(joined, [sr], sr, reference=tone, points=128)
    against_both = measure_boundaries(joined, [sr], sr, reference=[tone, noise], points=128)
    assert against_both.reference_points == 128
    assert against_both.reference_step_median != against_tone.reference_step_median  # noise points were drawn
    assert against_tone.worst_step_percentile < 99 and against_both.worst_step_percentile < 99
    with pytest.raises(ValueError, match="too short"):
        measure_boundaries(joined, [sr], sr, reference=[tone[:, :100]])
