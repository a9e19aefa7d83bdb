"""Mel -> linear magnitude by least squares (the paper's baseline vocoder, before Griffin-Lim).

Shapes: mel [..., n_mels, frames] -> magnitude [..., n_freqs, frames].
"""
from __future__ import annotations

import functools

import torch

from engine.dsp.config import SpectrogramConfig
from engine.dsp.spectrogram import mel_filterbank


@functools.lru_cache(maxsize=4)
def _pinv(cfg: SpectrogramConfig) -> torch.Tensor:
    return torch.linalg.pinv(mel_filterbank(cfg).double()).float()  # [n_mels, n_freqs]


def mel_to_magnitude(mel: torch.Tensor, cfg: SpectrogramConfig, nnls_iters: int = 0) -> torch.Tensor:
    """Least-squares inverse of the filterbank, clamped to >= 0; `nnls_iters` > 0 refines it with projected
    gradient steps towards the non-negative least-squares solution."""
    fb = mel_filterbank(cfg, mel.device).to(mel.dtype)  # [F, M]
    mel_t = mel.transpose(-1, -2)  # [..., T, M]
    mag = torch.matmul(mel_t, _pinv(cfg).to(mel.device, mel.dtype)).clamp_min(0)  # [..., T, F]
    if nnls_iters > 0:
        step = 1.0 / torch.linalg.matrix_norm(fb, ord=2) ** 2  # 1/L for the quadratic's gradient
        for _ in range(nnls_iters):
            grad = torch.matmul(torch.matmul(mag, fb) - mel_t, fb.T)
            mag = (mag - step * grad).clamp_min(0)
    return mag.transpose(-1, -2)
