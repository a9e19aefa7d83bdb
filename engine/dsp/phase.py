"""Phase reconstruction: Griffin-Lim (torchaudio, the paper's baseline) and our fast variant.

The fast variant is the momentum ("fast") Griffin-Lim of Perraudin et al. run on our own STFT pair (the
frame-major form in engine.dsp.frame_stft: same definition, ~2x cheaper per iteration), with a choice of initial
phase: peak-locked phase vocoder (default, engine.dsp.phase_init: measured to reach torchaudio GL-200's spectral
convergence on rendered music in 80 iterations, bench/RESULTS.md), random (as the baseline), bin-centre advance,
zeros, or the phase of a given signal (used to continue existing audio).
Shapes: magnitude [..., n_freqs, frames] -> audio [..., samples].
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torchaudio

from engine.dsp.config import SpectrogramConfig
from engine.dsp.frame_stft import FrameSTFT
from engine.dsp.phase_init import peak_locked_phase
from engine.dsp.spectrogram import istft, stft_complex


def spectral_convergence(audio: torch.Tensor, magnitude: torch.Tensor, cfg: SpectrogramConfig) -> float:
    """|| |STFT(audio)| - magnitude ||_F / ||magnitude||_F (paper eq. 1), over all leading dims."""
    est = stft_complex(audio, cfg).abs()
    frames = min(est.shape[-1], magnitude.shape[-1])
    est, ref = est[..., :frames], magnitude[..., :frames]
    return float(torch.linalg.vector_norm(est - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-12))


def griffin_lim_torchaudio(magnitude: torch.Tensor, cfg: SpectrogramConfig, n_iter: int = 200,
                           length: int | None = None, momentum: float = 0.99,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's baseline: torchaudio's Griffin-Lim (random initial phase, momentum 0.99 as the reference)."""
    lead = magnitude.shape[:-2]
    flat = magnitude.reshape(-1, *magnitude.shape[-2:])
    if generator is not None:  # torchaudio draws its random phase from the global RNG: seed it from ours
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    window = torch.hann_window(cfg.win_length, device=magnitude.device)
    audio = torchaudio.functional.griffinlim(flat, window, cfg.n_fft, cfg.hop_length, cfg.win_length, power=1.0,
                                             n_iter=n_iter, momentum=momentum, length=length, rand_init=True)
    return audio.reshape(*lead, audio.shape[-1])


def phase_advance_init(magnitude: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """Unit phasors whose phase advances by 2*pi*k*hop/n_fft per frame (phase-vocoder start)."""
    n_freqs, frames = magnitude.shape[-2:]
    k = torch.arange(n_freqs, device=magnitude.device, dtype=torch.float64)[:, None]
    m = torch.arange(frames, device=magnitude.device, dtype=torch.float64)[None, :]
    phase = torch.remainder(2 * math.pi * k * cfg.hop_length / cfg.n_fft * m, 2 * math.pi).float()
    return torch.polar(torch.ones_like(phase), phase).expand(magnitude.shape)


def fast_griffin_lim(magnitude: torch.Tensor, cfg: SpectrogramConfig, n_iter: int = 32, momentum: float = 0.99,
                     init: str = "peaks", init_phase: torch.Tensor | None = None, length: int | None = None,
                     generator: torch.Generator | None = None,
                     callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """Fast Griffin-Lim. init: "peaks" | "advance" | "random" | "zeros"; `init_phase` (complex, same shape) overrides it,
    e.g. the STFT of surrounding original audio. Returns audio [..., samples]."""
    if init_phase is not None:
        angles = init_phase / init_phase.abs().clamp_min(1e-12)
    elif init == "advance":
        angles = phase_advance_init(magnitude, cfg)
    elif init == "peaks":
        angles = peak_locked_phase(magnitude, cfg)
    elif init == "random":
        phase = torch.rand(magnitude.shape, generator=generator, device=magnitude.device) * 2 * math.pi
        angles = torch.polar(torch.ones_like(phase), phase)
    elif init == "zeros":
        angles = torch.ones_like(magnitude, dtype=torch.complex64)
    else:
        raise ValueError(f"unknown Griffin-Lim init {init!r}: use peaks, advance, random or zeros")
    out_len = length if length is not None else cfg.hop_length * (magnitude.shape[-1] - 1)
    pair = FrameSTFT(cfg, out_len, magnitude.device)
    if pair.frames != magnitude.shape[-1]:
        raise ValueError(f"{magnitude.shape[-1]} frames do not describe {out_len} samples "
                         f"(that needs {pair.frames} = length // hop + 1)")
    # Frame-major layout for the whole loop (see engine.dsp.frame_stft); in-place updates keep memory at a few
    # spectrum-sized buffers, which matters at 190 s stereo (each is ~130 MB).
    mag = magnitude.transpose(-1, -2).contiguous()
    angles = angles.transpose(-1, -2).contiguous() if angles.dim() else angles
    angles = torch.broadcast_to(angles, mag.shape).to(torch.complex64)
    spectrum = torch.empty_like(angles)
    previous = None
    for i in range(n_iter):
        torch.mul(angles, mag, out=spectrum)
        rebuilt = pair.analyse(pair.synthesise(spectrum))
        # Perraudin's FGLA: extrapolate along the last projection step, c = t_n + a (t_n - t_{n-1}).
        if previous is None or not momentum:
            angles = torch.sgn(rebuilt)
        else:
            previous.mul_(-momentum).add_(rebuilt, alpha=1.0 + momentum)
            angles = torch.sgn(previous)
        previous = rebuilt
        if callback is not None:
            callback(i)
    torch.mul(angles, mag, out=spectrum)
    return pair.crop(pair.synthesise(spectrum))
