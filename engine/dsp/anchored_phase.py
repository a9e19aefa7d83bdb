"""Phase for new material that must join existing audio: start from the original's phase, keep its samples.

`context_phase` builds the initial phase: the original's STFT phase in frames that are known, and in generated
frames the phase of the nearest known frame advanced at each bin's measured instantaneous frequency (phase
vocoder: what a steady partial would do), so the first iteration already continues the original.

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
    """Unit phasors [..., F, T]: the original's phase where `known_frames` [T] is True; elsewhere the phase of the
    nearest known frame (the left one when there is one) advanced at each bin's instantaneous frequency, measured
    from that frame and its known neighbour (phase vocoder), or at the bin's centre frequency without one."""
    frames = original_stft.shape[-1]
    phase = torch.angle(original_stft).to(torch.float64)
    known = known_frames.bool().cpu().tolist()
    k = torch.arange(original_stft.shape[-2], dtype=torch.float64, device=original_stft.device)[:, None]
    centre = 2 * math.pi * k * cfg.hop_length / cfg.n_fft  # [F, 1] radians per hop at each bin's centre
    if not any(known):
        offsets = torch.arange(frames, dtype=torch.float64, device=original_stft.device)[None, :]
        out = torch.remainder(centre * offsets, 2 * math.pi).float()
        return torch.polar(torch.ones_like(out), out).expand(original_stft.shape)
    out = phase.clone()
    first = known.index(True)
    last = None
    for m in range(frames):
        if known[m]:
            last = m
            continue
        ref, step = (last, m - last) if last is not None else (first, m - first)  # step < 0: backwards
        neighbour = ref - 1 if last is not None else ref + 1
        if 0 <= neighbour < frames and known[neighbour]:
            measured = phase[..., ref:ref + 1] - phase[..., neighbour:neighbour + 1]
            if last is None:
                measured = -measured
            deviation = torch.remainder(measured - centre + math.pi, 2 * math.pi) - math.pi
            rate = centre + deviation  # radians per hop at the bin's true frequency
        else:
            rate = centre
        out[..., m:m + 1] = phase[..., ref:ref + 1] + rate * step
    out = torch.remainder(out, 2 * math.pi).float()
    return torch.polar(torch.ones_like(out), out)


def anchored_griffin_lim(magnitude: torch.Tensor, cfg: SpectrogramConfig, original: torch.Tensor,
                         known: torch.Tensor, init_phase: torch.Tensor, n_iter: int = 32, momentum: float = 0.99,
                         callback: Callable[[int], None] | None = None, join: int = 128) -> torch.Tensor:
    """Audio [..., N] whose STFT magnitude approaches `magnitude` and whose samples equal `original` [..., N]
    wherever `known` [N] is True, joined to them without a step (`join_held_samples`, over `join` samples).
    `init_phase`: complex or unit phasors [..., F, T]."""
    length = original.shape[-1]
    keep = known.to(torch.bool)
    angles = init_phase / init_phase.abs().clamp_min(1e-12)
    previous = None
    for i in range(n_iter):
        # hold the original, joined without a step: a hard splice would put a broadband click into the very
        # frames whose phase we are solving, and Griffin-Lim would faithfully reproduce it
        audio = join_held_samples(istft(magnitude * angles, cfg, length), original, keep, join)
        rebuilt = stft_complex(audio, cfg)
        # Perraudin's fast Griffin-Lim step, on the projection that also honours the known samples
        accelerated = rebuilt if previous is None or not momentum else rebuilt + momentum * (rebuilt - previous)
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
        previous = rebuilt
        if callback is not None:
            callback(i)
    return join_held_samples(istft(magnitude * angles, cfg, length), original, keep, join)


def join_held_samples(free: torch.Tensor, original: torch.Tensor, keep: torch.Tensor, join: int) -> torch.Tensor:
    """`original` where `keep` [N], else `free` ([..., N] both), without a step where they meet: at each boundary
    the free side is offset by (original - free) at the last held sample, the offset fading to zero over `join`
    samples (raised cosine) inside the free span. Griffin-Lim's estimate is close to the held samples at a seam
    but not equal; this removes the remaining step before anything is resampled or spliced."""
    out = torch.where(keep, original, free)
    n = keep.shape[-1]
    changes = (torch.nonzero(keep[1:] != keep[:-1]).flatten() + 1).tolist()  # first index after each change
    bounds = [0] + changes + [n]
    for i, c in enumerate(changes):
        if bool(keep[c - 1]):  # a free span starts at c
            span = min(join, bounds[i + 2] - c)
            # starts at 1: no step
            curve = torch.cos(torch.linspace(0, math.pi / 2, span + 1, device=free.device)[:-1]) ** 2
            out[..., c:c + span] += (original[..., c - 1] - free[..., c - 1])[..., None] * curve
        else:  # a free span ends at c - 1
            span = min(join, c - bounds[i])
            curve = torch.cos(torch.linspace(0, math.pi / 2, span + 1, device=free.device)[:-1]).flip(0) ** 2
            out[..., c - span:c] += (original[..., c] - free[..., c])[..., None] * curve
    return out
