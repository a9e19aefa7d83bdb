"""Simple, honest audio statistics for the quality report: compare generated clips with held-out audio.

All functions take audio [channels, samples] (numpy or torch, 44.1 kHz unless `cfg` says otherwise) and work on
the mono mix, except where stated.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.dsp import SpectrogramConfig, log_mel, stft_magnitude

PITCH_CLASSES = 12


def _mono(audio) -> torch.Tensor:
    a = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    return a.mean(0) if a.ndim == 2 else a


def mel_band_energy(audio, cfg: SpectrogramConfig) -> np.ndarray:
    """Distribution of energy over the mel bands (sums to 1), [n_mels]."""
    return band_energy_of_mel(torch.exp(log_mel(_mono(audio), cfg)) - cfg.log_floor)


def band_energy_of_mel(mel: torch.Tensor) -> np.ndarray:
    """Linear mel [n_mels, frames] -> its energy distribution over the bands (sums to 1), [n_mels]."""
    energy = (mel.clamp_min(0) ** 2).sum(-1).double().numpy()
    return energy / max(energy.sum(), 1e-20)


def band_energy_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (bits) between two band-energy distributions: 0 same, 1 disjoint."""
    p, q = p + 1e-12, q + 1e-12
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


def onset_rate(audio, cfg: SpectrogramConfig) -> float:
    """Onsets per second from peaks of half-wave-rectified log spectral flux above an adaptive threshold."""
    mag = stft_magnitude(_mono(audio), cfg).double().numpy()
    flux = np.maximum(np.diff(np.log1p(100 * mag), axis=1), 0).sum(0)
    if flux.size < 3:
        return 0.0
    k = 8
    padded = np.pad(flux, (k, k), mode="edge")
    local = np.array([np.median(padded[i:i + 2 * k + 1]) for i in range(flux.size)])
    threshold = local + 0.5 * flux.std()
    peaks = [i for i in range(1, flux.size - 1)
             if flux[i] > threshold[i] and flux[i] >= flux[i - 1] and flux[i] >= flux[i + 1]]
    return len(peaks) * cfg.sample_rate / cfg.hop_length / flux.size


def chroma(audio, cfg: SpectrogramConfig) -> np.ndarray:
    """Mean chroma vector (12 pitch classes, sums to 1) from STFT bins between 55 Hz and 4 kHz."""
    mag = stft_magnitude(_mono(audio), cfg).double().numpy()
    freqs = np.arange(mag.shape[0]) * cfg.sample_rate / cfg.n_fft
    keep = (freqs >= 55) & (freqs <= 4000)
    pcs = np.round(12 * np.log2(freqs[keep] / 440.0)).astype(int) % PITCH_CLASSES
    energy = (mag[keep] ** 2).sum(1)
    out = np.bincount(pcs, weights=energy, minlength=PITCH_CLASSES)
    return out / max(out.sum(), 1e-20)


def chroma_movement(audio: np.ndarray, cfg: SpectrogramConfig, window_seconds: float = 1.0) -> float:
    """Mean cosine distance between the chroma of consecutive `window_seconds` windows of audio [channels, samples]
    (mono mix); windows with no energy in the chroma range are skipped."""
    step = int(window_seconds * cfg.sample_rate)
    vectors = [chroma(audio[..., i:i + step], cfg) for i in range(0, audio.shape[-1] - step + 1, step)]
    vectors = [v for v in vectors if v.sum() > 0]
    distances = [1 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(vectors, vectors[1:])]
    return float(np.mean(distances)) if distances else 0.0


def chroma_entropy(audio, cfg: SpectrogramConfig) -> float:
    """Entropy (bits, 0..log2(12)=3.58) of the mean chroma: low = tonal centre, high = noise-like."""
    c = chroma(audio, cfg) + 1e-12
    return float(-(c * np.log2(c)).sum())


def rms_db(audio) -> float:
    """RMS level (dB re full scale) over all channels and samples."""
    a = np.asarray(audio, dtype=np.float32)
    return float(20 * np.log10(np.sqrt((a ** 2).mean()) + 1e-12))


def summary(audio, cfg: SpectrogramConfig) -> dict[str, float]:
    a = np.asarray(audio, dtype=np.float32)
    return {
        "rms_db": rms_db(a),
        "onset_rate": onset_rate(a, cfg),
        "chroma_entropy": chroma_entropy(a, cfg),
    }
