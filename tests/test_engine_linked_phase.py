"""Stereo-linked Griffin-Lim: a panned stereo clip keeps its inter-channel coherence (independent channels lose it)
at about the same per-channel consistency; mono and one-channel inputs are plain fast Griffin-Lim; progress runs
over both stages; the render pipeline and the CLI choices offer it."""
import math

import pytest
import torch

from engine.dsp import SpectrogramConfig, stft_complex, stft_magnitude
from engine.dsp.linked_phase import linked_griffin_lim
from engine.dsp.phase import fast_griffin_lim, spectral_convergence
from engine.bundle import load_bundle
from engine.render import PHASE_METHODS, RenderError, reconstruct_phase

CFG = SpectrogramConfig()


def _panned_chords(seconds: float = 3.0) -> torch.Tensor:
    """Four decaying harmonic voices, each panned by gain only (as FluidSynth places instruments): [2, samples]."""
    t = torch.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    out = torch.zeros(2, t.numel())
    for i, (f0, pan) in enumerate(zip((130.8, 196.0, 261.6, 329.6), (0.2, 0.4, 0.6, 0.8))):
        env = torch.exp(-3.0 * torch.remainder(t + 0.37 * i, 0.75))
        tone = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8)) * env
        out[0] += 0.15 * math.cos(pan * math.pi / 2) * tone
        out[1] += 0.15 * math.sin(pan * math.pi / 2) * tone
    return out


def _coherence(audio: torch.Tensor) -> float:
    """Energy-weighted magnitude coherence of the two channels over time, 60 Hz-8 kHz (1 = one phase)."""
    spec = stft_complex(audio, CFG)
    cross = (spec[0] * spec[1].conj()).sum(-1).abs()
    power = spec.abs().square().sum(-1)
    coh = cross / (power[0] * power[1]).sqrt().clamp_min(1e-12)
    freqs = torch.arange(CFG.n_freqs) * CFG.sample_rate / CFG.n_fft
    band = (freqs >= 60) & (freqs <= 8000)
    weight = power.sum(0)[band]
    return float((coh[band] * weight).sum() / weight.sum())


def test_linked_keeps_stereo_coherence_that_independent_channels_lose():
    audio = _panned_chords()
    magnitude = stft_magnitude(audio, CFG)
    length = audio.shape[-1]
    linked = linked_griffin_lim(magnitude, CFG, n_iter=48, length=length)
    alone = fast_griffin_lim(magnitude, CFG, n_iter=48, length=length)
    assert _coherence(audio) > 0.95
    assert _coherence(linked) > 0.85
    assert _coherence(alone) < _coherence(linked) - 0.2
    sc_linked = sum(spectral_convergence(linked[c], magnitude[c], CFG) for c in (0, 1)) / 2
    sc_alone = sum(spectral_convergence(alone[c], magnitude[c], CFG) for c in (0, 1)) / 2
    assert sc_linked < 1.5 * sc_alone  # each channel still matches its own magnitude about as well
    # the mono fold-down keeps its level: independent phases partly cancel in the sum
    mono = lambda a: float(a.mean(0).square().mean().sqrt())
    assert abs(mono(linked) / mono(audio) - 1) < abs(mono(alone) / mono(audio) - 1) + 0.02


def test_mono_and_single_channel_inputs_are_plain_fast_griffin_lim():
    magnitude = stft_magnitude(_panned_chords(1.0), CFG)
    for mag in (magnitude[0], magnitude[:1]):
        assert torch.equal(linked_griffin_lim(mag, CFG, n_iter=6), fast_griffin_lim(mag, CFG, n_iter=6))
    # all iterations independent (shared fraction 0) is the per-channel variant too
    assert torch.equal(linked_griffin_lim(magnitude, CFG, n_iter=6, shared_fraction=0.0),
                       fast_griffin_lim(magnitude, CFG, n_iter=6))


def test_batches_are_linked_per_item_and_progress_covers_both_stages():
    audio = _panned_chords(1.0)
    magnitude = stft_magnitude(audio, CFG)
    calls = []
    one = linked_griffin_lim(magnitude, CFG, n_iter=10, length=audio.shape[-1], callback=calls.append)
    assert calls[0] == 0 and calls[-1] == 9 and calls == sorted(calls)
    batch = linked_griffin_lim(torch.stack([magnitude, magnitude]), CFG, n_iter=10, length=audio.shape[-1])
    assert batch.shape == (2, 2, audio.shape[-1])
    assert torch.allclose(batch[0], one, atol=1e-5) and torch.allclose(batch[1], one, atol=1e-5)


def test_bad_shared_fraction_is_refused():
    magnitude = stft_magnitude(_panned_chords(0.5), CFG)
    with pytest.raises(ValueError, match="shared_fraction"):
        linked_griffin_lim(magnitude, CFG, n_iter=4, shared_fraction=1.5)


def test_render_pipeline_links_by_default_and_keeps_independent_on_request(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    audio = _panned_chords(1.0)
    magnitude = stft_magnitude(audio, bundle.spectrogram)
    n = audio.shape[-1] // CFG.hop_length * CFG.hop_length
    assert PHASE_METHODS == ("fast", "independent", "torchaudio")
    fast = reconstruct_phase(magnitude, bundle, n, "fast", 8, "peaks")
    assert torch.equal(fast, linked_griffin_lim(magnitude, bundle.spectrogram, n_iter=8, length=n))
    alone = reconstruct_phase(magnitude, bundle, n, "independent", 8, "peaks")
    assert torch.equal(alone, fast_griffin_lim(magnitude, bundle.spectrogram, n_iter=8, length=n))
    with pytest.raises(RenderError, match="unknown phase method"):
        reconstruct_phase(magnitude, bundle, n, "linked", 8, "peaks")
