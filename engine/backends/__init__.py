"""Model backends behind one small interface: a denoiser (x, t -> prediction) and a vocoder (mel -> magnitude).

Both take and return float32 torch tensors. Where the tensors live is the backend's: onnxruntime's sessions take
and return host arrays, so the onnx backend's tensors are on the CPU whatever device it runs on; the torch
backend's stay on the models' device (`Engine.tensor_device`), so a GPU render copies nothing per step.
"""
from __future__ import annotations

from typing import Protocol

import torch

BACKENDS = ("auto", "onnx", "torch")  # Engine.load's backend: auto picks torch on CUDA when the bundle has programs
PRECISIONS = ("fp32", "fp16", "bf16")  # the torch backend's autocast precisions


class Denoiser(Protocol):
    device: str

    beat_features: int  # width of the U-Net's beat-grid input (0: none; engine.beat_grid)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, beat: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, n_mels, T] (model space), t [B] float timesteps, beat [1 | B, beat_features, T] (None: no
        grid; ignored by a U-Net without one) -> prediction [B, C, n_mels, T]."""


class VocoderBackend(Protocol):
    device: str

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel [B, C, n_mels, T] -> magnitude STFT [B, C, n_freqs, T]."""
