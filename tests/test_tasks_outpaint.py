"""Outpainting on the tiny bundle: the input's samples untouched between the extensions, extensions far longer
than one window (each window continuing the previous), bars at a BPM, 44.1/48 kHz, mono/stereo, no clicks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.api import Engine
from engine.masked_sampling import MaskedConfig, count_unet_calls
from engine.cli import main as render_main
from engine.regions import BarsLength, RegionError, Tempo
from engine.tasks.outpaint import outpaint
from engine.audio_io import read_native
from tests.task_audio import write_clip

FAST = {"steps": 3, "gl_iters": 3, "seed": 2}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    # one thread: on a shared 2-core machine torch's many small element-wise ops stall when threads spin
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("rate, channels, subtype", [(48_000, 1, "PCM_16"), (44_100, 2, "PCM_24"),
                                                     (48_000, 2, "FLOAT")])
def test_both_sides_keep_the_input_bit_identical(engine, tmp_path, rate, channels, subtype):
    src_path = write_clip(tmp_path / "in.wav", 1.5, rate, channels, subtype)
    fractions = []
    result = outpaint(engine, src_path, left=0.75, right=1.25, callback=fractions.append,
                      output=tmp_path / "out.wav", **FAST)
    src, out = read_native(src_path), read_native(tmp_path / "out.wav")
    left, right = round(0.75 * rate), round(1.25 * rate)
    assert (out.sample_rate, out.subtype, out.channels) == (rate, subtype, channels)
    assert out.frames == left + src.frames + right
    assert result.info["original_at_samples"] == [left, left + src.frames]
    np.testing.assert_array_equal(out.samples[left:left + src.frames], src.samples)
    for new in (out.samples[:left], out.samples[left + src.frames:]):
        assert np.abs(new.astype(np.float64)).max() > 0  # real new audio, not silence
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert result.info["boundary"]["worst_step_ratio"] < 4.0  # no click at either join


def test_long_extension_in_sliding_windows(engine, tmp_path):
    """1 s of input -> 8 s: with 2 s chunks that is four windows, each continuing the one before."""
    src_path = write_clip(tmp_path / "in.wav", 1.0, 44_100, 2)
    result = outpaint(engine, src_path, right=7.0, context_seconds=1.0, chunk_seconds=2.0, **FAST)
    per_window = count_unet_calls(MaskedConfig(steps=FAST["steps"]))
    assert result.info["windows"] == 4 and result.info["unet_calls"] == 4 * per_window
    assert result.samples.shape[0] == 44_100 * 8
    src = read_native(src_path)
    np.testing.assert_array_equal(result.samples[:44_100], src.samples)
    audio = result.audio
    # every 2 s chunk carries signal and no chunk boundary steps: check the joins between windows too
    hop = 2 * 44_100
    for join in range(44_100 + hop, audio.shape[-1], hop):
        local = np.abs(np.diff(audio[:, join - 400:join - 10], axis=-1)).max()
        assert np.abs(np.diff(audio[:, join - 3:join + 3], axis=-1)).max() < 3 * local + 1e-6
    assert np.sqrt((audio[:, -hop:] ** 2).mean()) > 1e-4


def test_bars_at_a_bpm(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.flac", 1.0, 48_000, 2, "PCM_24", "FLAC")
    result = outpaint(engine, src_path, right=BarsLength(1), tempo=Tempo(120, 3, 4), **FAST)  # a 3/4 bar: 1.5 s
    assert result.info["right_s"] == pytest.approx(1.5)
    assert result.samples.shape[0] == 48_000 + 72_000 and result.format == "FLAC"


def test_nothing_to_do_and_bad_lengths(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.0, 44_100, 1)
    with pytest.raises(RegionError, match="nothing to outpaint"):
        outpaint(engine, src_path, output=tmp_path / "out.wav", **FAST)
    with pytest.raises(RegionError, match="non-negative"):
        outpaint(engine, src_path, right=-2.0, **FAST)
    with pytest.raises(RegionError, match="tempo"):
        outpaint(engine, src_path, right=BarsLength(2), **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_cli_outpaint(tiny_bundle, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.0, 48_000, 2, "PCM_16")
    out = tmp_path / "long.wav"
    code = render_main(["outpaint", "--bundle", str(tiny_bundle), "--in", str(src_path), "--right", "1b",
                        "--bpm", "90", "--steps", "2", "--gl-iters", "2", "--out", str(out), "--quiet"])
    assert code == 0
    got = read_native(out)
    assert got.subtype == "PCM_16" and got.frames == 48_000 + round(4 * 60 / 90 * 48_000)
    np.testing.assert_array_equal(got.samples[:48_000], read_native(src_path).samples)
