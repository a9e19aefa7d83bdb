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
    ignored (noise floor)."""
    mag = magnitude.float().transpose(-1, -2)  # [..., frames, F]: peak search runs along frequency
    n_freqs = mag.shape[-1]
    log_mag = torch.log(mag + 1e-9)
    left = torch.nn.functional.pad(log_mag[..., :-1], (1, 0), value=-math.inf)
    right = torch.nn.functional.pad(log_mag[..., 1:], (0, 1), value=-math.inf)
    floor = log_mag.amax(-1, keepdim=True) + floor_db / 20 * math.log(10)
    is_peak = (log_mag > left) & (log_mag >= right) & (log_mag > floor)
    # Parabolic interpolation of the log magnitude around each bin: offset in (-0.5, 0.5) bins.
    curvature = left - 2 * log_mag + right
    offset = 0.5 * (left - right) / curvature
    offset = torch.where(torch.isfinite(offset) & (curvature < 0), offset, torch.zeros_like(offset))
    bins = torch.arange(n_freqs, device=mag.device, dtype=torch.float32)
    peak_freq = bins + offset.clamp(-0.5, 0.5)  # refined frequency in bins, valid where is_peak
    nearest = _nearest_peak(is_peak)
    freq = torch.gather(peak_freq, -1, nearest)  # every bin: its partial's frequency (bins)
    # Phase advance per frame of a partial at `freq` bins: 2*pi*freq*hop/n_fft; trapezoidal over time, float64 so
    # thousands of frames do not lose precision.
    step = (2 * math.pi * cfg.hop_length / cfg.n_fft) * freq.double()
    advance = torch.cat((torch.zeros_like(step[..., :1, :]), 0.5 * (step[..., 1:, :] + step[..., :-1, :])), dim=-2)
    track = torch.remainder(advance.cumsum(-2), 2 * math.pi)
    # Lock each bin to its peak's phase plus the window's linear phase across the lobe.
    locked = torch.gather(track, -1, nearest) + math.pi * (freq.double() - bins.double())
    phase = locked.float().transpose(-1, -2)
    return torch.polar(torch.ones_like(phase), phase)
