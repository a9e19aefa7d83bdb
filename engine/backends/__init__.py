"""Model backends behind one small interface: a denoiser (x, t -> prediction) and a vocoder (mel -> magnitude).

Both take and return float32 torch tensors on the CPU; where the work runs (onnxruntime CPU/CUDA, or torch) is
the backend's business.
"""
from __future__ import annotations

from typing import Protocol

import torch


class Denoiser(Protocol):
    device: str

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x [B, C, n_mels, T] (model space), t [B] float timesteps -> prediction [B, C, n_mels, T]."""


class VocoderBackend(Protocol):
    device: str

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel [B, C, n_mels, T] -> magnitude STFT [B, C, n_freqs, T]."""
