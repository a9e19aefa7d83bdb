"""Phase for new material that must join existing audio: start from the original's phase, keep its samples.

`context_phase` builds the initial phase: the original's STFT phase in frames that are known, and in generated
frames the phase of the nearest known frame advanced by each bin's centre frequency per hop (what a steady
partial would do), so the first iteration already continues the original instead of starting from scratch.

`anchored_griffin_lim` is fast (momentum) Griffin-Lim with one extra projection per iteration: samples outside
the edited spans are reset to the original before re-analysis. The generated frames' phase is therefore solved
jointly with the real audio on both sides of each seam, and the output agrees with the original up to the seam.
Shapes: magnitude / complex STFT [..., n_freqs, frames]; audio [..., samples]; `known` [samples] bool.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from engine.dsp.config import SpectrogramConfig
from engine.dsp.spectrogram import istft, stft_complex


def context_phase(original_stft: torch.Tensor, known_frames: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """Unit phasors [..., F, T]: the original's phase where `known_frames` [T] is True, elsewhere propagated from
    the nearest known frame (the left one when there is one) by the phase-vocoder advance."""
    frames = original_stft.shape[-1]
    phase = torch.angle(original_stft).to(torch.float64)
    known = known_frames.bool().cpu().tolist()
    if not any(known):
        source = [0] * frames
        base = torch.zeros_like(phase[..., :1])
        ref = [None] * frames
    else:
        last, ref = None, []
        for m in range(frames):  # nearest known frame on the left, else the first one on the right
            last = m if known[m] else last
            ref.append(last)
        first = known.index(True)
        ref = [r if r is not None else first for r in ref]
        source, base = ref, None
    k = torch.arange(original_stft.shape[-2], dtype=torch.float64, device=original_stft.device)[:, None]
    advance = 2 * math.pi * k * cfg.hop_length / cfg.n_fft  # [F, 1] radians per hop
    idx = torch.tensor(source, device=original_stft.device)
    offsets = (torch.arange(frames, device=original_stft.device) - idx).to(torch.float64)[None, :]  # [1, T]
    start = phase[..., idx] if base is None else base.expand_as(phase)
    out = torch.remainder(start + advance * offsets, 2 * math.pi).float()
    return torch.polar(torch.ones_like(out), out)


def anchored_griffin_lim(magnitude: torch.Tensor, cfg: SpectrogramConfig, original: torch.Tensor,
                         known: torch.Tensor, init_phase: torch.Tensor, n_iter: int = 32, momentum: float = 0.99,
                         callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """Audio [..., N] whose STFT magnitude approaches `magnitude` and whose samples equal `original` [..., N]
    wherever `known` [N] is True. `init_phase`: complex or unit phasors [..., F, T]."""
    length = original.shape[-1]
    keep = known.to(torch.bool)
    angles = init_phase / init_phase.abs().clamp_min(1e-12)
    previous = None
    for i in range(n_iter):
        audio = torch.where(keep, original, istft(magnitude * angles, cfg, length))
        rebuilt = stft_complex(audio, cfg)
        # Perraudin's fast Griffin-Lim step, on the projection that also honours the known samples
        accelerated = rebuilt if previous is None or not momentum else rebuilt + momentum * (rebuilt - previous)
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
        previous = rebuilt
        if callback is not None:
            callback(i)
    return torch.where(keep, original, istft(magnitude * angles, cfg, length))
