"""Fast Griffin-Lim internals: the frame-major STFT pair equals engine.dsp.spectrogram's; the peak-locked
initial phase starts closer than random phase and converges further in the same iterations."""
import math

import pytest
import torch

from engine.dsp import SpectrogramConfig, istft, stft_complex, stft_magnitude
from engine.dsp.frame_stft import FrameSTFT
from engine.dsp.phase import fast_griffin_lim, spectral_convergence
from engine.dsp.phase_init import _nearest_peak, peak_locked_phase

CFG = SpectrogramConfig()


def _music(seconds=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    out = torch.zeros(2, t.numel())
    for i, f0 in enumerate((196.0, 246.9, 293.7, 392.0)):
        env = torch.exp(-2.5 * torch.remainder(t + 0.21 * i, 0.6))
        vibrato = 0.003 * torch.sin(2 * math.pi * 5 * t)
        tone = sum(torch.sin(2 * math.pi * f0 * k * t * (1 + vibrato)) / k for k in range(1, 7))
        out[i % 2] += 0.2 * env * tone
        out[(i + 1) % 2] += 0.1 * env * tone
    return out + 0.002 * torch.randn(out.shape, generator=g)


@pytest.mark.parametrize("length", [40 * 1024, 40 * 1024 + 517, 3000])
def test_frame_stft_matches_shared_definition(length):
    audio = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    pair = FrameSTFT(CFG, length)
    padded = torch.nn.functional.pad(audio, (pair.pad, pair.pad))
    spec = pair.analyse(padded)
    reference = stft_complex(audio, CFG)
    assert spec.shape == reference.transpose(-1, -2).shape
    assert torch.allclose(spec.transpose(-1, -2), reference, atol=1e-3, rtol=1e-4)
    rebuilt = pair.crop(pair.synthesise(spec))
    assert torch.allclose(rebuilt, istft(reference, CFG, length), atol=1e-4)
    assert torch.allclose(rebuilt, audio, atol=1e-4)


def test_nearest_peak():
    peaks = torch.tensor([[False, True, False, False, False, True, False], [False] * 7])
    assert _nearest_peak(peaks).tolist() == [[1, 1, 1, 1, 5, 5, 5], list(range(7))]


def test_peak_locked_start_beats_random_and_advance():
    audio = _music()
    mag = stft_magnitude(audio, CFG)
    length = audio.shape[-1]
    sc = {}
    for init in ("peaks", "random", "advance"):
        for n in (0, 12):
            est = fast_griffin_lim(mag, CFG, n_iter=n, init=init, length=length,
                                   generator=torch.Generator().manual_seed(0))
            sc[init, n] = spectral_convergence(est, mag, CFG)
    assert sc["peaks", 0] < 0.7 * sc["random", 0]
    assert sc["peaks", 12] < sc["random", 12] and sc["peaks", 12] < sc["advance", 12]
    assert sc["peaks", 12] < sc["peaks", 0]
    phasors = peak_locked_phase(mag, CFG)
    assert phasors.shape == mag.shape and torch.allclose(phasors.abs(), torch.ones(()), atol=1e-5)


def test_frames_must_describe_length():
    mag = torch.rand(2, 1025, 10)
    with pytest.raises(ValueError, match="10 frames do not describe"):
        fast_griffin_lim(mag, CFG, n_iter=1, length=20 * 1024)
    assert fast_griffin_lim(mag, CFG, n_iter=1, length=9 * 1024 + 100).shape == (2, 9 * 1024 + 100)


@pytest.mark.parametrize("cfg", [CFG, SpectrogramConfig(n_fft=512, win_length=400, hop_length=128),
                                 SpectrogramConfig(n_fft=512, win_length=400, hop_length=160)])
@pytest.mark.parametrize("start, stop", [(0, 7), (5, 17), (30, 41), (0, 41)])
def test_block_projection_equals_whole_signal_projection(cfg, start, stop):
    pair = FrameSTFT(cfg, 40 * cfg.hop_length)
    g = torch.Generator().manual_seed(1)
    spectrum = torch.polar(torch.rand(pair.frames, cfg.n_fft // 2 + 1, generator=g),
                           torch.rand(pair.frames, cfg.n_fft // 2 + 1, generator=g) * 6.3)
    whole = pair.analyse(pair.synthesise(spectrum))[start:stop]
    first, last = pair.block_context(start, stop)
    block = pair.project(spectrum[first:last], first, start, stop)
    assert torch.allclose(block, whole, atol=1e-5 * float(whole.abs().max()))


def test_blocked_griffin_lim_matches_whole_signal_iteration():
    import engine.dsp.phase as phase

    magnitude = stft_magnitude(_music(3.0), CFG)
    pair = FrameSTFT(CFG, CFG.hop_length * (magnitude.shape[-1] - 1))
    angles = torch.ones(magnitude.shape[-1], magnitude.shape[-2], dtype=torch.complex64)
    outs = [phase._fgla(magnitude[0], angles.clone(), pair, 12, 0.99, None, block=b) for b in (7, 32, 10_000)]
    # float32 rounding of the short block FFTs differs by CPU kernel (1e-7 per pass); 12 iterations with momentum
    # 0.99 amplify it to ~7e-5 of full scale on some CPUs, so the bound is relative to the signal
    for out in outs[:-1]:
        assert torch.allclose(out, outs[-1], atol=2e-4 * float(outs[-1].abs().max()))


@pytest.mark.parametrize("init", ["peaks", "random"])
def test_channels_together_equal_channels_one_by_one(init):
    """The GPU layout (every channel in one set of ops, whole signal) gives the CPU layout's audio."""
    import engine.dsp.phase as phase

    magnitude = stft_magnitude(_music(3.0), CFG)
    calls = {True: [], False: []}
    outs = {flag: fast_griffin_lim(magnitude, CFG, n_iter=10, init=init, together=flag,
                                   generator=torch.Generator().manual_seed(3), callback=calls[flag].append)
            for flag in (True, False)}
    assert outs[True].shape == outs[False].shape == (2, CFG.hop_length * (magnitude.shape[-1] - 1))
    assert torch.allclose(outs[True], outs[False], atol=1e-5)
    assert calls[True] == list(range(10)) and calls[False][-1] == 9  # progress in iterations either way
    pair = FrameSTFT(CFG, CFG.hop_length * (magnitude.shape[-1] - 1))
    angles = torch.ones(2, magnitude.shape[-1], magnitude.shape[-2], dtype=torch.complex64)
    blocked = phase._fgla(magnitude, angles.clone(), pair, 6, 0.99, None, block=16)  # batched and blocked too
    whole = phase._fgla(magnitude, angles.clone(), pair, 6, 0.99, None, block=10_000)
    assert torch.allclose(blocked, whole, atol=1e-5)
