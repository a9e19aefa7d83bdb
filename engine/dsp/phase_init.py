"""A coherent initial phase from the magnitude alone: the peak-locked phase vocoder.

Tonal music is mostly slowly varying partials. For each frame we find the magnitude peaks, refine each peak's
frequency by parabolic interpolation of the log magnitude, give every bin the frequency of its nearest peak, and
integrate that frequency over time (phase advance 2*pi*f*hop/n_fft per frame, trapezoidal). Bins around a peak
take the peak's phase plus the window's linear phase pi*(f - bin) (a window centred in the frame), so each
partial's main lobe is phase-locked vertically as in Laroche-Dolson's phase vocoder. Griffin-Lim started here
has far less to fix than from random phase.

Shapes: magnitude [..., n_freqs, frames] -> unit phasors (complex64) of the same shape.
"""
from __future__ import annotations

import math

import torch

from engine.dsp.config import SpectrogramConfig


def _nearest_peak(is_peak: torch.Tensor) -> torch.Tensor:
    """For [..., F] booleans, the index of the nearest True along the last axis (own index if none)."""
    n = is_peak.shape[-1]
    idx = torch.arange(n, device=is_peak.device).expand(is_peak.shape)
    below = torch.where(is_peak, idx, torch.full_like(idx, -1)).cummax(-1).values  # last peak at or below
    above = torch.where(is_peak, idx, torch.full_like(idx, 2 * n)).flip(-1).cummin(-1).values.flip(-1)
    pick_above = (above - idx) < (idx - below)
    nearest = torch.where(pick_above, above, below)
    none = (below < 0) & (above >= n)
    nearest = torch.where(nearest < 0, above, nearest)
    nearest = torch.where(nearest >= n, below, nearest)
    return torch.where(none, idx, nearest)


def peak_locked_phase(magnitude: torch.Tensor, cfg: SpectrogramConfig, floor_db: float = -80.0) -> torch.Tensor:
    """Initial phase for Griffin-Lim (see module docstring). Peaks below `floor_db` from the frame maximum are
    ignored (noise floor). Works one leading slice (e.g. channel) at a time to bound memory on long clips."""
    lead = magnitude.shape[:-2]
    flat = magnitude.reshape(-1, *magnitude.shape[-2:])
    out = torch.empty(flat.shape, dtype=torch.complex64, device=magnitude.device)
    for i in range(flat.shape[0]):
        out[i] = _peak_locked_phase_2d(flat[i], cfg, floor_db)
    return out.reshape(*lead, *magnitude.shape[-2:])


def _peak_frequencies(log_mag: torch.Tensor, floor_db: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[frames, F] log magnitude -> (nearest peak index per bin [frames, F], its refined frequency in bins)."""
    n_freqs = log_mag.shape[-1]
    left = torch.nn.functional.pad(log_mag[..., :-1], (1, 0), value=-math.inf)
    right = torch.nn.functional.pad(log_mag[..., 1:], (0, 1), value=-math.inf)
    floor = log_mag.amax(-1, keepdim=True) + floor_db / 20 * math.log(10)
    is_peak = (log_mag > left) & (log_mag >= right) & (log_mag > floor)
    # Parabolic interpolation of the log magnitude around each bin: offset in (-0.5, 0.5) bins.
    curvature = left - 2 * log_mag + right
    offset = 0.5 * (left - right) / curvature
    offset = torch.where(torch.isfinite(offset) & (curvature < 0), offset, torch.zeros_like(offset)).clamp_(-0.5, 0.5)
    bins = torch.arange(n_freqs, device=log_mag.device, dtype=torch.float32)
    nearest = _nearest_peak(is_peak)
    return nearest, torch.gather(offset.add_(bins), -1, nearest)


def _peak_locked_phase_2d(magnitude: torch.Tensor, cfg: SpectrogramConfig, floor_db: float,
                          block: int = 512) -> torch.Tensor:
    """[n_freqs, frames] -> unit phasors [n_freqs, frames], `block` frames at a time (bounded memory)."""
    n_freqs, frames = magnitude.shape
    rate = 2 * math.pi * cfg.hop_length / cfg.n_fft  # phase advance per frame of a partial at 1 bin
    bins = torch.arange(n_freqs, device=magnitude.device, dtype=torch.float64)
    out = torch.empty(frames, n_freqs, dtype=torch.complex64, device=magnitude.device)
    carry = torch.zeros(n_freqs, dtype=torch.float64, device=magnitude.device)  # track phase at the last frame
    last_step = None
    for f0 in range(0, frames, block):
        log_mag = torch.log(magnitude[:, f0:f0 + block].float().T + 1e-9)  # [block, F]: peaks along frequency
        nearest, freq = _peak_frequencies(log_mag, floor_db)
        step = freq.double() * rate
        # Trapezoidal integration over time in float64, wrapped to [0, 2*pi): thousands of frames stay exact.
        prev = torch.cat((step[:1] if last_step is None else last_step[None], step[:-1]))
        increments = 0.5 * (step + prev)
        if last_step is None:
            increments[0] = 0.0
        track = torch.remainder(increments.cumsum(0) + carry, 2 * math.pi)
        carry, last_step = track[-1], step[-1]
        # Lock each bin to its peak's phase plus the window's linear phase across the lobe.
        locked = torch.gather(track, -1, nearest) + math.pi * (freq.double() - bins)
        out[f0:f0 + block] = torch.polar(torch.ones_like(locked), locked)
    return out.T
