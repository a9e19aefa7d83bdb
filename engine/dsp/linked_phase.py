"""Stereo-linked Griffin-Lim: one phase found for all channels, then each channel refined from it.

Griffin-Lim run on each channel alone starts and converges to unrelated phases, so a stereo clip comes out with
inter-channel coherence ~0.5 in the bass where the music it learned from has 0.8: a wide, phasey image whose mono
fold-down comb-filters (its log-mel jumps 0.39 nats per frame against 0.32 for the real audio, bench/RESULTS.md,
"Stereo phase"). Here the first `shared_fraction` of the iterations solve the channels' RMS magnitude once; the
rest refine each channel's own magnitude starting from that common phase, which lets channels drift apart only
where their magnitudes disagree (reverb, panning), as real stereo does. It also costs fewer iterations: the shared
stage solves one slice instead of C.

Shapes: magnitude [..., C, n_freqs, frames] with the channels on axis -3 -> audio [..., C, samples].
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.dsp.config import SpectrogramConfig
from engine.dsp.phase import fast_griffin_lim
from engine.dsp.spectrogram import stft_complex

# the split closest to real piano stereo (inter-channel coherence, mono mel change) when decoding the vocoder's
# magnitude of held-out audio, at the least cost in per-channel fidelity (bench/RESULTS.md, "Stereo phase")
SHARED_FRACTION = 0.25


def linked_griffin_lim(magnitude: torch.Tensor, cfg: SpectrogramConfig, n_iter: int = 32, init: str = "peaks",
                       init_phase: torch.Tensor | None = None, length: int | None = None,
                       generator: torch.Generator | None = None, callback: Callable[[int], None] | None = None,
                       shared_fraction: float = SHARED_FRACTION) -> torch.Tensor:
    """Fast Griffin-Lim with the channels (axis -3) linked; `callback(i)` runs for i in 0..n_iter-1 across both
    stages. A mono input (no channel axis, or one channel) is plain fast Griffin-Lim. `init_phase` (complex, the
    magnitude's shape) starts the shared stage from the channels' summed spectrum."""
    if not 0.0 <= shared_fraction <= 1.0:
        raise ValueError(f"shared_fraction must be in [0, 1], got {shared_fraction}")
    shared_iters = round(n_iter * shared_fraction)
    if magnitude.ndim < 3 or magnitude.shape[-3] == 1 or shared_iters == 0:
        return fast_griffin_lim(magnitude, cfg, n_iter=n_iter, init=init, init_phase=init_phase, length=length,
                                generator=generator, callback=callback)
    out_len = length if length is not None else cfg.hop_length * (magnitude.shape[-1] - 1)
    common = magnitude.square().mean(-3).sqrt()  # [..., F, T]: every channel's energy, one phase problem
    common_init = None if init_phase is None else init_phase.sum(-3)
    audio = fast_griffin_lim(common, cfg, n_iter=shared_iters, init=init, init_phase=common_init, length=out_len,
                             generator=generator, callback=callback)
    spectrum = stft_complex(audio, cfg).unsqueeze(-3)  # the shared stage's consistent phase, [..., 1, F, T]
    report = None if callback is None else (lambda i: callback(shared_iters + i))
    return fast_griffin_lim(magnitude, cfg, n_iter=n_iter - shared_iters, init_phase=spectrum.expand_as(magnitude),
                            length=out_len, callback=report)
