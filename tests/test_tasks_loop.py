"""Loops on the tiny bundle: exact length in seconds or bars at a BPM, any output rate, and a wrap seam that
the boundary measure cannot tell from the loop's own interior."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import soundfile as sf

from engine.api import Engine
from engine.boundary import loop_wrap_audio, measure_boundaries
from engine.cli import main as render_main
from engine.regions import BarsLength, RegionError, Tempo
from engine.tasks.loop import loop
from engine.tasks.generate import generate
from tests.task_audio import write_clip

FAST = {"steps": 4, "gl_iters": 8, "seed": 11}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    # one thread: on a shared 2-core machine torch's many small element-wise ops stall when threads spin
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


def _wrap_report(audio: np.ndarray, rate: int):
    wrapped, seam = loop_wrap_audio(audio, min(audio.shape[-1] // 2, rate // 2))
    return measure_boundaries(wrapped, [seam], rate, reference=audio)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_loop_of_bars_is_exact_and_seamless(engine, rate):
    fractions = []
    result = loop(engine, BarsLength(1), tempo=Tempo(100, 4, 4), sample_rate=rate, callback=fractions.append,
                  **FAST)
    assert result.sample_rate == rate and result.audio.shape == (engine.channels, round(2.4 * rate))
    assert abs(result.info["pitch_shift_cents"]) < 15  # the period is stretched by under half a hop
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    report = _wrap_report(result.audio, rate)
    assert report.worst_step_ratio < 4.0 and report.worst_step_percentile < 100.0
    assert report.worst_flux_percentile < 99.0  # the wrap sounds like any other point of the loop
    assert result.info["boundary"]["seams"][0]["step_ratio"] == pytest.approx(report.seams[0].step_ratio)


def test_circular_generation_beats_cutting_a_render(engine):
    """A plain render cut to length has an arbitrary wrap; the loop's wrap must score no worse than its interior
    while the cut render's wrap jumps."""
    seconds = 2.0
    looped = loop(engine, seconds, **FAST).audio
    plain = generate(engine, seconds + 0.5, seed=11, steps=4, gl_iters=8).audio[:, :round(seconds * 44_100)]
    ours, cut = _wrap_report(looped, 44_100), _wrap_report(plain, 44_100)
    assert ours.seams[0].flux_db <= cut.seams[0].flux_db + 1.0


def test_loop_from_a_source_and_bad_lengths(engine, tmp_path):
    src = write_clip(tmp_path / "in.wav", 2.5, 48_000, 1)
    result = loop(engine, 2.0, source=src, strength=0.5, **FAST)
    assert result.sample_rate == 48_000 and result.audio.shape[-1] == 96_000
    with pytest.raises(RegionError, match="shorter than"):
        loop(engine, 4.0, source=src, **FAST)
    with pytest.raises(RegionError, match="at least"):
        loop(engine, 0.05, **FAST)
    with pytest.raises(RegionError, match="tempo"):
        loop(engine, BarsLength(2), **FAST)


def test_cli_loop(tiny_bundle, tmp_path):
    out = tmp_path / "loop.wav"
    code = render_main(["loop", "--bundle", str(tiny_bundle), "--length", "2b", "--bpm", "120", "--rate", "48000",
                        "--steps", "2", "--gl-iters", "2", "--seed", "1", "--out", str(out), "--quiet"])
    assert code == 0
    info = sf.info(str(out))
    assert info.samplerate == 48_000 and info.frames == 4 * 48_000  # 2 bars of 4/4 at 120 BPM = 4 s exactly
