"""Pipeline pieces every task shares: clip length in frames, model space <-> log-mel, mel -> audio.

Model space is the U-Net's scaler space ([-1, 1]). Decoding: U-Net space -> denormalise(U-Net stats) -> log-mel
-> normalise(vocoder stats) -> vocoder -> magnitude -> phase reconstruction -> audio trimmed to the exact length.
Shapes: model-space mel [C, n_mels, T] (or [B, C, n_mels, T]); audio [C, samples].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engine.bundle import Bundle
from engine.dsp.linked_phase import linked_griffin_lim
from engine.dsp.phase import fast_griffin_lim, griffin_lim_torchaudio
from engine.dsp.scaler import denormalise, normalise
from engine.dsp.spectrogram import frames_covering, log_mel

# ours: momentum + phase init with the channels linked (engine.dsp.linked_phase) | the same per channel alone |
# the paper's baseline
PHASE_METHODS = ("fast", "independent", "torchaudio")
MAX_FRAMES = 8192  # the paper's training length (190.2 s at 44.1 kHz); memory grows linearly beyond it


class RenderError(ValueError):
    """Bad render arguments (length, steps, sampler...); the message names the argument."""


@dataclass(frozen=True)
class ClipLength:
    samples: int  # exact output length at the model rate
    frames: int  # STFT frames covering `samples` (centred frames, last one past the end)
    model_frames: int  # frames padded up to the U-Net's frame multiple


def max_clip_seconds(bundle: Bundle) -> float:
    """The longest clip one render makes: the frames that fit MAX_FRAMES (a multiple of the U-Net's), less the
    one past the end that centred frames need (8191 hops = 190.1946 s for 44.1 kHz / hop 1024). The one source
    of this limit for the engine, the OSC server and the docs."""
    m = bundle.frame_multiple
    return ((MAX_FRAMES // m * m) - 1) * bundle.spectrogram.hop_length / bundle.sample_rate


def clip_length(seconds: float, bundle: Bundle) -> ClipLength:
    """Seconds (any positive float) -> sample count round(seconds * rate) and the frame counts behind it."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise RenderError(f"seconds must be a number, got {seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise RenderError(f"seconds must be a positive number, got {seconds}")
    samples = round(seconds * bundle.sample_rate)
    if samples < 1:
        raise RenderError(f"seconds={seconds} is shorter than one sample at {bundle.sample_rate} Hz")
    frames = frames_covering(samples, bundle.spectrogram)  # the inverse STFT covers every sample
    m = bundle.frame_multiple
    model_frames = -(-frames // m) * m
    if model_frames > MAX_FRAMES:
        raise RenderError(f"seconds={seconds:g} is too long: at most {max_clip_seconds(bundle):.4f} s per render")
    return ClipLength(samples, frames, model_frames)


def encode(audio: torch.Tensor, bundle: Bundle) -> torch.Tensor:
    """Audio [..., samples] at the model rate -> U-Net model space [..., n_mels, frames] (for audio-to-audio)."""
    return normalise(log_mel(audio.float(), bundle.spectrogram), bundle.unet_stats)


def to_vocoder_space(x: torch.Tensor, bundle: Bundle) -> torch.Tensor:
    """U-Net model space -> the vocoder's normalised mel (each model has its own scaler)."""
    return normalise(denormalise(x, bundle.unet_stats), bundle.vocoder_stats)


def reconstruct_phase(magnitude: torch.Tensor, bundle: Bundle, length: int, method: str = "fast", n_iter: int = 32,
                      init: str = "advance", generator: torch.Generator | None = None,
                      callback: Callable[[int], None] | None = None,
                      init_phase: torch.Tensor | None = None) -> torch.Tensor:
    """Magnitude [..., n_freqs, frames] -> audio [..., length]. `callback(i)` after each iteration (fast only;
    torchaudio's loop has no hook, so it reports once at the end). `init_phase` (complex STFT, same shape, e.g.
    of existing audio) starts the fast variants from that phase. "fast" links the channels (axis -3) of a
    multichannel magnitude; "independent" solves each channel alone, as the paper does."""
    cfg = bundle.spectrogram
    # Iterate on the signal length the frames describe ((frames - 1) * hop, consistent with the STFT), then trim.
    natural = cfg.hop_length * (magnitude.shape[-1] - 1)
    if length > natural:
        raise RenderError(f"{magnitude.shape[-1]} frames cover {natural} samples, fewer than the {length} asked for")
    if method == "fast":
        audio = linked_griffin_lim(magnitude, cfg, n_iter=n_iter, init=init, init_phase=init_phase, length=natural,
                                   generator=generator, callback=callback)
    elif method == "independent":
        audio = fast_griffin_lim(magnitude, cfg, n_iter=n_iter, init=init, init_phase=init_phase, length=natural,
                                 generator=generator, callback=callback)
    elif init_phase is not None:
        raise RenderError("init_phase needs the fast or independent phase method")
    elif method == "torchaudio":
        audio = griffin_lim_torchaudio(magnitude, cfg, n_iter=n_iter, length=natural, generator=generator)
        if callback is not None:
            callback(n_iter - 1)
    else:
        raise RenderError(f"unknown phase method {method!r}: use {' or '.join(PHASE_METHODS)}")
    return audio[..., :length]


def vocode(x: torch.Tensor, bundle: Bundle, vocoder, frames: int) -> torch.Tensor:
    """U-Net space mel [B, C, n_mels, T] -> magnitude [B, C, n_freqs, frames] (first `frames` frames)."""
    magnitude = vocoder(to_vocoder_space(x, bundle))
    return magnitude[..., :frames].float()


@dataclass
class RenderResult:
    audio: np.ndarray  # float32 [channels, samples] at `sample_rate`
    sample_rate: int
    info: dict


class Progress:
    """Turns stage-local steps into one monotonic fraction for `callback(fraction)`. Stages are weighted by
    their expected cost (units), e.g. {"sampling": steps, "phase": gl_iters}."""

    def __init__(self, callback: Callable[[float], None] | None, units: dict[str, float]) -> None:
        self.callback = callback
        self.units = units
        self.total = max(sum(units.values()), 1e-9)
        self.done: dict[str, float] = {name: 0.0 for name in units}

    def update(self, stage: str, completed: float) -> None:
        self.done[stage] = min(float(completed), self.units[stage])
        if self.callback is not None:
            self.callback(min(1.0, sum(self.done.values()) / self.total))
