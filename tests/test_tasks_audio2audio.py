"""audio2audio and interpolate on the tiny bundle: input's rate/format kept, strength respected, regions of an
audio2audio edit leave the rest bit-identical, slerp keeps the noise at the scheduled level, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.api import Engine
from engine.cli import main as render_main
from engine.regions import RegionError
from engine.tasks.audio2audio import audio2audio
from engine.tasks.interpolate import interpolate, mix_noised, slerp
from engine.audio_io import read_native
from tests.task_audio import write_clip

FAST = {"steps": 6, "gl_iters": 4, "seed": 3}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    # one thread: on a shared 2-core machine torch's many small element-wise ops stall when threads spin
    threads = torch.get_num_threads()
    yield Engine.load(tiny_bundle, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("rate, channels, subtype", [(48_000, 2, "PCM_24"), (44_100, 1, "PCM_16")])
def test_audio2audio_whole_file(engine, tmp_path, rate, channels, subtype):
    src_path = write_clip(tmp_path / "in.wav", 1.5, rate, channels, subtype)
    result = audio2audio(engine, src_path, 0.5, jumps=0, output=tmp_path / "out.wav", **FAST)
    out = read_native(tmp_path / "out.wav")
    assert (out.sample_rate, out.subtype, out.channels, out.frames) == (rate, subtype, channels, round(1.5 * rate))
    assert result.info["unet_calls"] == 3  # strength 0.5 of 6 steps
    assert not np.array_equal(out.samples, read_native(src_path).samples)


def test_strength_controls_distance_from_the_input(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 1.5, 44_100, 2)
    src = read_native(src_path)
    mel = lambda audio: engine.encode(torch.from_numpy(np.ascontiguousarray(audio)))  # noqa: E731
    reference = mel(src.to_float())
    distance = {s: float((mel(audio2audio(engine, src, s, **FAST).audio) - reference).abs().mean())
                for s in (0.15, 0.95)}
    assert distance[0.15] < distance[0.95]


def test_audio2audio_regions_keep_the_rest(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.flac", 2.0, 48_000, 2, "PCM_16", "FLAC")
    result = audio2audio(engine, src_path, 0.6, regions=["0.5-1.2"], **FAST)
    src = read_native(src_path)
    np.testing.assert_array_equal(result.samples[:24_000], src.samples[:24_000])
    np.testing.assert_array_equal(result.samples[57_600:], src.samples[57_600:])
    assert result.format == "FLAC" and result.info["boundary"]["worst_step_ratio"] < 4.0
    with pytest.raises(RegionError, match="strength"):
        audio2audio(engine, src_path, 0.0, **FAST)


def test_slerp_keeps_the_noise_level_linear_does_not():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 128, 64, generator=g), torch.randn(2, 128, 64, generator=g)
    x0 = torch.zeros(2, 128, 64)
    for ratio in (0.1, 0.3, 0.5):
        _, lin = mix_noised(x0, x0, a, b, 0.5, ratio, "linear")
        _, sph = mix_noised(x0, x0, a, b, 0.5, ratio, "slerp")
        assert lin == pytest.approx((ratio ** 2 + (1 - ratio) ** 2) ** 0.5, abs=0.02)
        assert sph == pytest.approx(1.0, abs=0.02)
    assert torch.equal(slerp(a, b, 1.0), a) or torch.allclose(slerp(a, b, 1.0), a, atol=1e-5)


def test_interpolate_two_files_of_different_rates(engine, tmp_path):
    a = write_clip(tmp_path / "a.wav", 1.5, 48_000, 2, "PCM_24", seed=1)
    b = write_clip(tmp_path / "b.flac", 1.2, 44_100, 1, "PCM_16", "FLAC", seed=2)
    fractions = []
    result = interpolate(engine, a, b, 0.3, strength=0.5, callback=fractions.append, output=tmp_path / "ab.wav",
                         **FAST)
    out = read_native(tmp_path / "ab.wav")
    assert (out.sample_rate, out.subtype, out.channels) == (48_000, "PCM_24", 2)
    assert out.frames == round(1.2 * 48_000)  # the shorter input's length, at A's rate
    assert result.info["mix"] == "slerp" and result.info["noise_scale"] == pytest.approx(1.0, abs=0.05)
    assert fractions[-1] == pytest.approx(1.0)
    linear = interpolate(engine, a, b, 0.5, strength=0.5, mix="linear", **FAST)
    assert linear.info["noise_scale"] == pytest.approx(0.707, abs=0.05)
    with pytest.raises(RegionError, match="ratio"):
        interpolate(engine, a, b, 1.5, **FAST)


def test_cli_audio2audio_and_interpolate(tiny_bundle, tmp_path):
    a = write_clip(tmp_path / "a.wav", 1.0, 48_000, 1, "PCM_16")
    b = write_clip(tmp_path / "b.wav", 1.0, 44_100, 2, "FLOAT")
    assert render_main(["audio2audio", "--bundle", str(tiny_bundle), "--in", str(a), "--strength", "0.4",
                        "--steps", "3", "--gl-iters", "2", "--out", str(tmp_path / "x.wav"), "--quiet"]) == 0
    assert sf.info(str(tmp_path / "x.wav")).subtype == "PCM_16"
    assert render_main(["interpolate", "--bundle", str(tiny_bundle), "--a", str(b), "--b", str(a), "--ratio", "0.7",
                        "--steps", "3", "--gl-iters", "2", "--out", str(tmp_path / "y.wav"), "--quiet"]) == 0
    info = sf.info(str(tmp_path / "y.wav"))
    assert (info.samplerate, info.subtype, info.channels) == (44_100, "FLOAT", 2)


def test_long_files_go_in_chunks_that_join_cleanly(engine, tmp_path):
    src_path = write_clip(tmp_path / "in.wav", 3.0, 48_000, 2, "PCM_24")
    fractions = []
    result = audio2audio(engine, src_path, 0.6, chunk_seconds=1.0, callback=fractions.append, **FAST)
    assert result.info["chunks"] == 3 and result.samples.shape == (144_000, 2)
    assert result.info["boundary"]["worst_step_ratio"] < 4.0  # the chunk joins do not click
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
