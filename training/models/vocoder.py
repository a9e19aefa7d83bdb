"""The Msanii neural vocoder (paper section 3.2): tokenize -> one residual block -> detokenize -> exp.

Normalised mel [B, C, n_mels, T] -> magnitude STFT [B, C, n_freqs, T]. Stereo is carried on the channel axis C
(the 3x3 convolution sees both channels, as in the U-Net); any C and any T >= 1 work.
"""
from __future__ import annotations

import torch
from torch import nn

from training.models.config import VocoderConfig
from training.models.layers import Detokenize, ResidualBlock, Tokenize


class Vocoder(nn.Module):
    def __init__(self, cfg: VocoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VocoderConfig()
        self.tokenize = Tokenize(cfg.n_mels, cfg.width)
        self.residual = ResidualBlock(cfg.width, cfg.width, cfg.mlp_factor)
        self.detokenize = Detokenize(cfg.width, cfg.n_freqs)

    def log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        return self.detokenize(self.residual(self.tokenize(mel)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_magnitude(mel))
