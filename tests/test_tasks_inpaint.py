"""Inpainting on the tiny bundle: untouched audio bit-identical at 44.1/48 kHz, mono/stereo, 16/24/32f; no clicks;
phase from the surrounding original; regions validated before anything is written; RePaint baseline; CLI."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.api import Engine
from engine.cli import main as render_main
from engine.dsp.config import SpectrogramConfig
from engine.dsp.phase import fast_griffin_lim
from engine.dsp.spectrogram import stft_complex
from engine.regions import BarBeat, Region, RegionError, Tempo
from engine.dsp.anchored_phase import anchored_griffin_lim, context_phase
from engine.tasks.inpaint import inpaint
from engine.audio_io import read_native
from tests.task_audio import write_clip

FAST = {"steps": 4, "gl_iters": 4, "seed": 5}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    # one thread: on a shared 2-core machine torch's many small element-wise ops stall when threads spin
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("rate, channels, subtype, fmt", [
    (44_100, 2, "PCM_24", "WAV"), (48_000, 1, "PCM_16", "FLAC"), (48_000, 2, "FLOAT", "WAV"), (44_100, 1, "PCM_16", "WAV"),
])
def test_untouched_audio_is_bit_identical(engine, tmp_path, rate, channels, subtype, fmt):
    src_path = write_clip(tmp_path / f"in.{fmt.lower()}", 2.5, rate, channels, subtype, fmt)
    out_path = tmp_path / f"out.{fmt.lower()}"
    fractions = []
    result = inpaint(engine, src_path, [(0.6, 1.1), "1.7-2.0"], callback=fractions.append, output=out_path, **FAST)
    src, out = read_native(src_path), read_native(out_path)
    assert (out.sample_rate, out.subtype, out.format, out.channels) == (rate, subtype, fmt, channels)
    assert out.frames == src.frames
    a, b = round(0.6 * rate), round(1.1 * rate)
    c, d = round(1.7 * rate), round(2.0 * rate)
    np.testing.assert_array_equal(out.samples[:a], src.samples[:a])
    np.testing.assert_array_equal(out.samples[b:c], src.samples[b:c])
    np.testing.assert_array_equal(out.samples[d:], src.samples[d:])
    assert not np.array_equal(out.samples[a:b], src.samples[a:b])  # the region really was regenerated
    np.testing.assert_array_equal(result.samples, out.samples)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    info = result.info
    assert info["bit_identical_outside"] and info["unet_calls"] > 0 and info["input_sample_rate"] == rate
    # no clicks: the sample step at every seam is of the size of the steps around it (a click is many times it)
    assert info["boundary"]["worst_step_ratio"] < 4.0


def test_no_click_even_against_a_dc_offset(engine, tmp_path):
    """New material cannot reproduce a DC offset; a hard splice would step by it. The crossfades inside the
    region must hide it."""
    src_path = write_clip(tmp_path / "dc.wav", 2.0, 44_100, 2, "PCM_24", dc=0.3)
    result = inpaint(engine, src_path, [(0.7, 1.3)], **FAST)
    audio, src = result.audio, read_native(src_path).to_float()
    seams = [round(0.7 * 44_100), round(1.3 * 44_100)]
    local = np.abs(np.diff(src, axis=-1)).max()
    for p in seams:
        steps = np.abs(np.diff(audio[:, p - 3:p + 3], axis=-1)).max()
        assert steps < 2 * local  # nothing larger than the original's own largest step
    hard = src.copy()
    hard[:, seams[0]:seams[1]] = 0.0
    assert np.abs(np.diff(hard, axis=-1)).max() > 10 * local  # what the fades prevent


def test_regions_in_bars_and_beats(engine, tmp_path):
    src_path = write_clip(tmp_path / "bars.wav", 2.5, 48_000, 2)
    tempo = Tempo.parse(120, "4/4")  # a beat is 0.5 s
    result = inpaint(engine, src_path, [Region(BarBeat(1, 2), BarBeat(1, 3.5))], tempo=tempo, **FAST)
    assert result.info["regions_s"] == [[0.5, 1.25]]
    src = read_native(src_path)
    np.testing.assert_array_equal(result.samples[:24_000], src.samples[:24_000])
    np.testing.assert_array_equal(result.samples[60_000:], src.samples[60_000:])


@pytest.mark.parametrize("regions, message", [
    ([(1.0, 3.5)], "after the end"), ([(1.0, 0.5)], "reversed"), ([(1.0, 1.0)], "empty"),
    ([(0.2, 0.8), (0.6, 1.0)], "overlaps"), ([(-0.1, 0.5)], "before the beginning"),
])
def test_bad_regions_write_nothing(engine, tmp_path, regions, message):
    src_path = write_clip(tmp_path / "in.wav", 2.0, 44_100, 1)
    with pytest.raises(RegionError, match=message):
        inpaint(engine, src_path, regions, output=tmp_path / "out.wav", **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_existing_output_is_refused_before_rendering(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.0, 44_100, 1)
    (tmp_path / "out.wav").write_bytes(b"precious")
    calls = []
    with pytest.raises(ValueError, match="already exists"):
        inpaint(engine, src_path, [(0.2, 0.5)], output=tmp_path / "out.wav", callback=calls.append, **FAST)
    assert calls == [] and (tmp_path / "out.wav").read_bytes() == b"precious"


def test_cancel_leaves_no_file(engine, tmp_path):
    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        if fraction > 0.1:
            raise Cancelled

    src_path = write_clip(tmp_path / "in.wav", 1.5, 44_100, 2)
    with pytest.raises(Cancelled):
        inpaint(engine, src_path, [(0.4, 0.9)], output=tmp_path / "out.wav", callback=cancel, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_repaint_baseline_is_selectable(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.5, 48_000, 2)
    ours = inpaint(engine, src_path, [(0.5, 1.0)], method="replace", jumps=0, steps=20, gl_iters=2, seed=1)
    base = inpaint(engine, src_path, [(0.5, 1.0)], method="repaint", steps=20, gl_iters=2, seed=1)
    assert ours.info["unet_calls"] == 20
    assert base.info["unet_calls"] == 110  # diffusers RePaint, j=10 r=10: 20 steps + 9 x 10 resampled ones
    src = read_native(src_path)
    for result in (ours, base):
        np.testing.assert_array_equal(result.samples[:24_000], src.samples[:24_000])


def test_lossy_input_keeps_decoded_samples_in_float_wav(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.ogg", 1.5, 48_000, 2, "VORBIS", "OGG")
    result = inpaint(engine, src_path, [(0.5, 0.8)], output=tmp_path / "out.wav", **FAST)
    assert (result.format, result.subtype) == ("WAV", "FLOAT")
    decoded = read_native(src_path)
    np.testing.assert_array_equal(read_native(tmp_path / "out.wav").samples[:24_000], decoded.samples[:24_000])


def test_phase_starts_from_and_stays_anchored_to_the_original():
    cfg = SpectrogramConfig()
    rate, n = cfg.sample_rate, 44_100
    t = torch.arange(n) / rate
    original = (0.5 * torch.sin(2 * math.pi * 440.0 * t))[None]
    spec = stft_complex(original, cfg)
    known_frames = torch.ones(spec.shape[-1], dtype=torch.bool)
    known_frames[15:30] = False
    init = context_phase(spec, known_frames, cfg)
    unit = spec / spec.abs().clamp_min(1e-12)
    assert (init[..., 3] - unit[..., 3]).abs().max() < 1e-4  # known frames: the original's own phase
    known = torch.ones(n, dtype=torch.bool)
    gap = slice(16 * cfg.hop_length, 29 * cfg.hop_length)
    known[gap] = False
    anchored = anchored_griffin_lim(spec.abs(), cfg, original, known, init, n_iter=16)
    assert torch.equal(anchored[:, known], original[:, known])
    err_anchored = (anchored[:, gap] - original[:, gap]).abs().max()
    plain = fast_griffin_lim(spec.abs(), cfg, n_iter=16, init="random", length=n, generator=torch.Generator().manual_seed(0))
    err_plain = (plain[:, gap] - original[:, gap]).abs().max()
    assert err_anchored < 0.05 < err_plain  # the gap continues the original's phase; plain GL lands anywhere


def test_cli_inpaint_keeps_input_format(tiny_bundle, tmp_path):
    src_path = write_clip(tmp_path / "in.flac", 1.5, 48_000, 1, "PCM_16", "FLAC")
    out = tmp_path / "out.flac"
    code = render_main(["inpaint", "--bundle", str(tiny_bundle), "--in", str(src_path), "--region", "0.4-0.9",
                        "--steps", "3", "--gl-iters", "2", "--seed", "1", "--out", str(out), "--quiet"])
    assert code == 0
    info = sf.info(str(out))
    assert (info.samplerate, info.subtype, info.channels) == (48_000, "PCM_16", 1)
    np.testing.assert_array_equal(read_native(out).samples[:19_000], read_native(src_path).samples[:19_000])
    code = render_main(["inpaint", "--bundle", str(tiny_bundle), "--in", str(src_path), "--region", "1:1-2:1",
                        "--out", str(tmp_path / "x.wav"), "--quiet"])
    assert code == 2 and not (tmp_path / "x.wav").exists()  # bar:beat without --bpm: a clear error


def test_regions_touching_the_file_edges(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.5, 48_000, 2, "PCM_16")
    result = inpaint(engine, src_path, [(0.0, 0.3), (1.2, 1.5)], **FAST)
    src = read_native(src_path)
    np.testing.assert_array_equal(result.samples[14_400:57_600], src.samples[14_400:57_600])
    assert result.samples.shape == src.samples.shape
    assert not np.array_equal(result.samples[:100], src.samples[:100])  # new from the very first sample
    assert [s["position"] for s in result.info["boundary"]["seams"]] == [14_400, 57_600]  # inner seams only
