"""Shared DSP against torchaudio/numpy references: odd lengths, mono/stereo, silence, very short input."""
import numpy as np
import pytest
import torch
import torchaudio

from engine.dsp import SpectrogramConfig, log_mel, mel_frames_for, samples_for_frames, stft_magnitude, istft
from engine.dsp.spectrogram import stft_complex, magnitude_to_mel
from engine.dsp.mel_inverse import mel_to_magnitude

CFG = SpectrogramConfig()


def _music(samples: int, channels: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / CFG.sample_rate
    notes = torch.tensor([220.0, 277.2, 329.6])[:, None]
    tone = (torch.sin(2 * np.pi * notes * t) * torch.exp(-3 * (t % 0.5))).sum(0) / 3
    return (tone + 0.01 * torch.randn(channels, samples, generator=g)).float()


@pytest.mark.parametrize("samples", [44_100, 44_101, 523_264, 2_047])
def test_magnitude_matches_torchaudio(samples):
    audio = _music(samples)
    ref = torchaudio.transforms.Spectrogram(n_fft=2048, win_length=2048, hop_length=1024, power=1.0,
                                            pad_mode="constant")(audio)
    ours = stft_magnitude(audio, CFG)
    assert ours.shape == ref.shape == (2, 1025, mel_frames_for(samples, CFG))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_log_mel_matches_torchaudio_melspectrogram():
    audio = _music(100_003, channels=1)
    ref = torchaudio.transforms.MelSpectrogram(sample_rate=44_100, n_fft=2048, win_length=2048, hop_length=1024,
                                               n_mels=128, power=1.0, pad_mode="constant")(audio)
    torch.testing.assert_close(log_mel(audio, CFG), torch.log(ref + CFG.log_floor), rtol=1e-4, atol=1e-4)


def test_any_leading_dims_and_frames():
    audio = _music(30_000, channels=6).reshape(2, 3, 30_000)
    mel = log_mel(audio, CFG)
    assert mel.shape == (2, 3, 128, 30_000 // 1024 + 1)
    torch.testing.assert_close(mel[1, 2], log_mel(audio[1, 2], CFG))
    assert samples_for_frames(512, CFG) == 523_264 and mel_frames_for(523_264, CFG) == 512
    assert samples_for_frames(8192, CFG) == 8_387_584


def test_silence_and_very_short_input_are_finite():
    for n in (1, 100, 1023, 1025):
        mel = log_mel(torch.zeros(2, n), CFG)
        assert mel.shape[-1] == mel_frames_for(n, CFG)
        assert torch.isfinite(mel).all()
        assert torch.allclose(mel, torch.full_like(mel, np.log(CFG.log_floor)))
    with pytest.raises(ValueError, match="empty"):
        log_mel(torch.zeros(2, 0), CFG)


@pytest.mark.parametrize("samples", [4096 * 10, 44_101])
def test_istft_inverts_stft(samples):
    audio = _music(samples)
    back = istft(stft_complex(audio, CFG), CFG, length=samples)
    torch.testing.assert_close(back, audio, rtol=1e-4, atol=1e-4)


def test_mel_pseudo_inverse_matches_numpy_lstsq():
    audio = _music(44_100, channels=1)
    mag = stft_magnitude(audio, CFG)
    mel = magnitude_to_mel(mag, CFG)
    fb = torchaudio.functional.melscale_fbanks(1025, 0.0, 22_050.0, 128, 44_100).numpy()
    ref = np.linalg.lstsq(fb.T.astype(np.float64), mel[0].numpy().astype(np.float64), rcond=None)[0]
    ours = mel_to_magnitude(mel, CFG)[0].numpy()
    np.testing.assert_allclose(ours, np.maximum(ref, 0), rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    # NNLS refinement never increases the mel reconstruction error and stays non-negative
    refined = mel_to_magnitude(mel, CFG, nnls_iters=50)
    assert (refined >= 0).all()
    err = lambda m: float(torch.linalg.vector_norm(magnitude_to_mel(m, CFG) - mel))
    assert err(refined) <= err(mel_to_magnitude(mel, CFG)) + 1e-6
