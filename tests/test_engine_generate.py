"""Engine: export -> load -> generate through onnxruntime, exact lengths, determinism, progress, settings."""
import numpy as np
import pytest
import torch

from engine.api import Engine, RenderResult
from engine.dsp.phase import spectral_convergence
from engine.render import RenderError
from engine.tasks.generate import generate, generate_batch


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine.load(tiny_bundle, device="cpu")


@pytest.mark.parametrize("seconds", [3.3, 1.0])
def test_generate_stereo_exact_length(engine, seconds):
    result = generate(engine, seconds, seed=3, steps=4, gl_iters=4)
    assert isinstance(result, RenderResult)
    assert result.sample_rate == 44100 and engine.channels == 2
    assert result.audio.dtype == np.float32
    assert result.audio.shape == (2, round(seconds * 44100))
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 1e-4
    assert not np.allclose(result.audio[0], result.audio[1])  # two real channels
    info = result.info
    assert info["seed"] == 3 and info["sampler"] == "dpmpp" and info["steps"] == 4 and info["device"] == "cpu"
    assert info["spacing"] == "logsnr" and info["order"] == 3  # from noise: 3M on log-SNR steps
    assert info["model_frames"] % 2 == 0 and info["model_frames"] >= info["frames"]
    assert 0 < info["spectral_convergence"] < 1


def test_same_seed_same_audio_other_seed_differs(engine):
    a = generate(engine, 1.0, seed=11, steps=3, gl_iters=3)
    b = generate(engine, 1.0, seed=11, steps=3, gl_iters=3)
    c = generate(engine, 1.0, seed=12, steps=3, gl_iters=3)
    assert np.array_equal(a.audio, b.audio)  # bit-identical
    assert not np.allclose(a.audio, c.audio)
    fresh = generate(engine, 0.5, steps=2, gl_iters=2)
    assert isinstance(fresh.info["seed"], int)
    again = generate(engine, 0.5, seed=fresh.info["seed"], steps=2, gl_iters=2)
    assert np.array_equal(fresh.audio, again.audio)  # an unseeded render can be repeated from its info


def test_ddim_and_paper_phase_path(engine):
    result = generate(engine, 0.7, seed=1, sampler="ddim", steps=5, gl_iters=5, phase="torchaudio")
    assert result.audio.shape == (2, round(0.7 * 44100))
    assert result.info["sampler"] == "ddim" and result.info["phase"] == "torchaudio" and result.info["spacing"] == "linear"
    fast = generate(engine, 0.7, seed=1, sampler="ddim", steps=5, gl_iters=5)
    assert not np.array_equal(result.audio, fast.audio)


def test_more_phase_iterations_converge_further(engine):
    few = generate(engine, 1.0, seed=5, steps=2, gl_iters=2)
    many = generate(engine, 1.0, seed=5, steps=2, gl_iters=24)
    assert many.info["spectral_convergence"] < few.info["spectral_convergence"]


def test_progress_callback_monotonic_and_cancellable(engine):
    seen = []
    generate(engine, 0.5, seed=0, steps=3, gl_iters=4, callback=seen.append)
    assert len(seen) >= 3 + 4 + 1 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert seen[2] == pytest.approx(6 / 10)  # 3 steps of weight 2, then 4 phase iterations of weight 1

    class Stop(Exception):
        pass

    def cancel(fraction):
        if fraction > 0.2:
            raise Stop
    with pytest.raises(Stop):
        generate(engine, 0.5, seed=0, steps=5, gl_iters=4, callback=cancel)


def test_decoding_uses_both_scalers(engine):
    """The decode path maps U-Net space through the U-Net scaler to log-mel, then into the vocoder's space."""
    from engine.dsp.scaler import denormalise, normalise
    from engine.render import to_vocoder_space
    x = torch.rand(2, 128, 8) * 2 - 1
    expected = normalise(denormalise(x, engine.bundle.unet_stats), engine.bundle.vocoder_stats)
    assert torch.allclose(to_vocoder_space(x, engine.bundle), expected)
    assert not torch.allclose(expected, x, atol=1e-3)
    audio, magnitude = engine.decode(x, samples=5000, gl_iters=8, generator=torch.Generator().manual_seed(0))
    assert audio.shape == (2, 5000) and magnitude.shape == (2, 1025, 6)
    assert spectral_convergence(audio, magnitude, engine.bundle.spectrogram) < 1


@pytest.mark.parametrize("kwargs, message", [
    ({"seconds": 0}, "seconds must be a positive"),
    ({"seconds": float("nan")}, "seconds must be a positive"),
    ({"seconds": 500.0}, "too long"),
    ({"seconds": 1.0, "steps": 0}, "steps must be an integer"),
    ({"seconds": 1.0, "sampler": "euler"}, "unknown sampler"),
    ({"seconds": 1.0, "gl_iters": -1}, "gl_iters must be"),
    ({"seconds": 1.0, "phase": "magic"}, "unknown phase method"),
])
def test_bad_arguments_are_named(engine, kwargs, message):
    with pytest.raises(RenderError, match=message):
        generate(engine, **kwargs)
    with pytest.raises(ValueError, match="seed must be"):
        generate(engine, 1.0, seed=-4)


def test_clip_length_paper_frame_multiple(engine):
    import dataclasses

    from engine.render import clip_length
    paper_like = dataclasses.replace(engine.bundle, frame_multiple=64)
    full = clip_length(190.0, paper_like)
    assert full.samples == 8_379_000 and full.frames == 8184 and full.model_frames == 8192
    short = clip_length(0.01, paper_like)
    assert short.samples == 441 and short.frames == 2 and short.model_frames == 64
    exact = clip_length(1024 * 63 / 44100, paper_like)  # frames exactly on the multiple
    assert exact.samples == 64512 and exact.frames == 64 and exact.model_frames == 64
    with pytest.raises(RenderError, match="at most 190.1946 s"):
        clip_length(190.3, paper_like)


@pytest.mark.parametrize("sampler", ["dpmpp", "sde"])
def test_batch_gives_each_seed_its_own_clip(engine, sampler):
    fractions = []
    batch = generate_batch(engine, 1.0, [5, 6, 5], steps=4, gl_iters=6, callback=fractions.append, sampler=sampler)
    for seed, result in zip((5, 6, 5), batch):
        alone = generate(engine, 1.0, seed=seed, steps=4, gl_iters=6, sampler=sampler)
        assert result.info["seed"] == seed and result.info["batch"] == 3
        assert np.abs(result.audio - alone.audio).max() < 1e-3 * max(np.abs(alone.audio).max(), 1e-6)
    assert not np.allclose(batch[0].audio, batch[1].audio)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with pytest.raises(RenderError, match="at least one clip"):
        generate_batch(engine, 1.0, [])
