"""STFT, mel filterbank and log-mel. Every function takes any leading dimensions.

Shapes: audio [..., samples] -> complex/magnitude STFT [..., n_freqs, frames] -> mel [..., n_mels, frames].
"""
from __future__ import annotations

import functools

import torch
import torchaudio

from engine.dsp.config import SpectrogramConfig


def mel_frames_for(samples: int, cfg: SpectrogramConfig) -> int:
    """Number of STFT frames (centred) the analysis of a signal of `samples` samples has."""
    return samples // cfg.hop_length + 1


def frames_covering(samples: int, cfg: SpectrogramConfig) -> int:
    """The fewest centred frames whose inverse STFT covers `samples` samples: (frames - 1) * hop >= samples, the
    last frame past the end. Equal to `mel_frames_for` when `samples` is a multiple of the hop; what a render
    that must come out exactly `samples` long synthesises."""
    return -(-samples // cfg.hop_length) + 1


def samples_for_frames(frames: int, cfg: SpectrogramConfig) -> int:
    """Signal length whose centred STFT has `frames` frames: (frames - 1) * hop (paper: 523,264 -> 512)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    return (frames - 1) * cfg.hop_length


@functools.lru_cache(maxsize=8)
def _window(win_length: int) -> torch.Tensor:
    return torch.hann_window(win_length)


@functools.lru_cache(maxsize=8)
def _mel_fb(cfg: SpectrogramConfig) -> torch.Tensor:
    return torchaudio.functional.melscale_fbanks(
        n_freqs=cfg.n_freqs, f_min=cfg.f_min, f_max=cfg.f_max if cfg.f_max is not None else cfg.sample_rate / 2,
        n_mels=cfg.n_mels, sample_rate=cfg.sample_rate, norm=cfg.mel_norm, mel_scale=cfg.mel_scale,
    )  # [n_freqs, n_mels]


def mel_filterbank(cfg: SpectrogramConfig, device: torch.device | None = None) -> torch.Tensor:
    """torchaudio's triangular filterbank, [n_freqs, n_mels]."""
    return _mel_fb(cfg).to(device) if device is not None else _mel_fb(cfg)


def stft_complex(audio: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """audio [..., samples] (float) -> complex STFT [..., n_freqs, frames]."""
    lead, n = audio.shape[:-1], audio.shape[-1]
    if n < 1:
        raise ValueError("audio is empty: need at least one sample for an STFT")
    flat = audio.reshape(-1, n)
    pad = cfg.n_fft // 2
    # Pad ourselves so zero padding works for any length (torch.stft's reflect mode needs > pad samples).
    flat = torch.nn.functional.pad(flat, (pad, pad), mode=cfg.center_pad)
    spec = torch.stft(flat, cfg.n_fft, cfg.hop_length, cfg.win_length, _window(cfg.win_length).to(audio.device),
                      center=False, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def stft_magnitude(audio: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """audio [..., samples] -> magnitude STFT [..., n_freqs, frames]."""
    return stft_complex(audio, cfg).abs()


def istft(spec: torch.Tensor, cfg: SpectrogramConfig, length: int | None = None) -> torch.Tensor:
    """complex STFT [..., n_freqs, frames] -> audio [..., samples] (inverse of `stft_complex`)."""
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:])
    frames = flat.shape[-1]
    full = cfg.hop_length * (frames - 1)
    audio = torch.istft(flat, cfg.n_fft, cfg.hop_length, cfg.win_length, _window(cfg.win_length).to(spec.device),
                        center=True, length=length if length is not None else full)
    return audio.reshape(*lead, audio.shape[-1])


def magnitude_to_mel(magnitude: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """magnitude [..., n_freqs, frames] -> linear mel [..., n_mels, frames]."""
    fb = mel_filterbank(cfg, magnitude.device).to(magnitude.dtype)
    return torch.matmul(magnitude.transpose(-1, -2), fb).transpose(-1, -2)


def log_mel(audio: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """audio [..., samples] -> log(mel + floor) [..., n_mels, frames] (magnitude, power 1, as the paper)."""
    return torch.log(magnitude_to_mel(stft_magnitude(audio, cfg), cfg) + cfg.log_floor)
