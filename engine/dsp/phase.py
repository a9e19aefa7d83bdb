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
from engine.dsp.spectrogram import stft_complex


def spectral_convergence(audio: torch.Tensor, magnitude: torch.Tensor, cfg: SpectrogramConfig) -> float:
    """|| |STFT(audio)| - magnitude ||_F / ||magnitude||_F (paper eq. 1), over all leading dims (summed one
    leading slice at a time, so a 190 s stereo clip needs one channel's STFT in memory, not two)."""
    audio_flat = audio.reshape(-1, audio.shape[-1])
    mag_flat = magnitude.reshape(-1, *magnitude.shape[-2:])
    if audio_flat.shape[0] != mag_flat.shape[0]:
        raise ValueError(f"audio {tuple(audio.shape)} and magnitude {tuple(magnitude.shape)} differ in leading dims")
    err = ref = 0.0
    for a, m in zip(audio_flat, mag_flat):
        est = stft_complex(a, cfg).abs()
        frames = min(est.shape[-1], m.shape[-1])
        err += float(torch.sum((est[..., :frames] - m[..., :frames]).double() ** 2))
        ref += float(torch.sum(m[..., :frames].double() ** 2))
    return (err ** 0.5) / max(ref ** 0.5, 1e-12)


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
                     callback: Callable[[int], None] | None = None, together: bool | None = None) -> torch.Tensor:
    """Fast Griffin-Lim. init: "peaks" | "advance" | "random" | "zeros"; `init_phase` (complex, same shape)
    overrides it, e.g. the STFT of surrounding original audio. Returns audio [..., samples].
    `together`: iterate all leading slices (channels) in one set of tensor ops instead of one after another
    (default: on GPUs, where it halves the kernel launches of a stereo clip; on CPUs one slice at a time halves
    the working set at no cost in speed). Either way gives the same audio."""
    if init_phase is None and init not in ("peaks", "advance", "random", "zeros"):
        raise ValueError(f"unknown Griffin-Lim init {init!r}: use peaks, advance, random or zeros")
    out_len = length if length is not None else cfg.hop_length * (magnitude.shape[-1] - 1)
    pair = FrameSTFT(cfg, out_len, magnitude.device)
    if pair.frames != magnitude.shape[-1]:
        raise ValueError(f"{magnitude.shape[-1]} frames do not describe {out_len} samples "
                         f"(that needs {pair.frames} = length // hop + 1)")
    lead = magnitude.shape[:-2]
    mags = magnitude.reshape(-1, *magnitude.shape[-2:])
    phases = None if init_phase is None else torch.broadcast_to(init_phase, magnitude.shape).reshape(mags.shape)
    # Channels are independent problems: solving them one after another halves the working set of a 190 s
    # stereo clip (each spectrum-sized buffer is ~65 MB per channel) at no cost in speed or result.
    slices = mags.shape[0]

    def start(c: int) -> torch.Tensor:
        return _initial_angles(mags[c], cfg, init, None if phases is None else phases[c], generator)
    if together is None:
        together = magnitude.device.type != "cpu"
    if together:
        angles = torch.stack([start(c) for c in range(slices)])
        return _fgla(mags, angles, pair, n_iter, momentum, callback).reshape(*lead, out_len)
    out = torch.empty(slices, out_len, device=magnitude.device)
    for c in range(slices):  # each slice's start is made when it is needed: one slice's buffers at a time
        report = None if callback is None else (lambda i, c=c: callback((c * n_iter + i) // slices))
        out[c] = _fgla(mags[c], start(c), pair, n_iter, momentum, report)
    return out.reshape(*lead, out_len)


def _initial_angles(magnitude: torch.Tensor, cfg: SpectrogramConfig, init: str, init_phase: torch.Tensor | None,
                    generator: torch.Generator | None) -> torch.Tensor:
    """[n_freqs, frames] -> frame-major unit phasors [frames, n_freqs] (complex64, contiguous)."""
    if init_phase is not None:
        angles = init_phase.T / init_phase.T.abs().clamp_min(1e-12)
    elif init == "peaks":
        angles = peak_locked_phase(magnitude, cfg).T  # frame-major storage already: no copy
    elif init == "advance":
        angles = phase_advance_init(magnitude, cfg).T
    elif init == "random":
        # Drawn where the generator lives (the engine's is a CPU one), so a seed gives one phase on every device.
        gen_device = generator.device if generator is not None else magnitude.device
        phase = torch.rand(magnitude.T.shape, generator=generator, device=gen_device).to(magnitude.device) * 2 * math.pi
        angles = torch.polar(torch.ones_like(phase), phase)
    else:  # zeros
        angles = torch.ones(magnitude.T.shape, dtype=torch.complex64, device=magnitude.device)
    return angles.to(torch.complex64).contiguous()


BLOCK_FRAMES = 512  # ~4 MB complex64 per block at n_fft 2048: the best of 64..1024 at 190 s (bench/RESULTS.md)


def _fgla(magnitude: torch.Tensor, angles: torch.Tensor, pair: FrameSTFT, n_iter: int, momentum: float,
          callback: Callable[[int], None] | None, block: int = BLOCK_FRAMES) -> torch.Tensor:
    """Magnitude [..., n_freqs, frames], frame-major angles [..., frames, n_freqs]; returns audio [..., length].

    Each iteration runs `block` frames at a time (FrameSTFT.project): the new phases go to a second buffer so
    every block reads the previous iteration's phases, exactly as the whole-signal iteration."""
    mag = magnitude.transpose(-1, -2).contiguous()  # frame-major, as the angles
    frames = mag.shape[-2]
    # One block when every block would rebuild the whole signal anyway, and on GPUs: blocks are for CPU caches,
    # and on a GPU each would cost a dozen kernel launches per iteration.
    if pair.block_context(0, 1) == (0, frames) or magnitude.device.type != "cpu":
        block = frames
    previous = torch.empty_like(angles)  # t_{n-1}: the last projection, per frame
    updated = torch.empty_like(angles)
    for i in range(n_iter):
        for start in range(0, frames, block):
            stop = min(frames, start + block)
            first, last = pair.block_context(start, stop)
            rebuilt = pair.project(angles[..., first:last, :] * mag[..., first:last, :], first, start, stop)
            if i == 0 or not momentum:
                torch.sgn(rebuilt, out=updated[..., start:stop, :])
            else:
                # Perraudin's FGLA: extrapolate along the last projection step, c = t_n + a (t_n - t_{n-1}).
                step = previous[..., start:stop, :]
                step.mul_(-momentum).add_(rebuilt, alpha=1.0 + momentum)
                torch.sgn(step, out=updated[..., start:stop, :])
            previous[..., start:stop, :] = rebuilt
        angles, updated = updated, angles
        if callback is not None:
            callback(i)
    return pair.crop(pair.synthesise(angles * mag))
