"""Signal processing shared by training and engine: one definition of STFT, mel and scaling.

Also the engine's phase reconstruction (phase.py: fast and torchaudio Griffin-Lim; anchored_phase.py: Griffin-Lim
with known samples held fixed; phase_init.py), the mel pseudo-inverse (mel_inverse.py) and crossfades.
"""
from engine.dsp.config import SpectrogramConfig
from engine.dsp.spectrogram import (
    log_mel,
    mel_filterbank,
    frames_covering,
    mel_frames_for,
    samples_for_frames,
    stft_complex,
    stft_magnitude,
    istft,
)
from engine.dsp.scaler import LearnedScaler, ScalerStats, normalise, denormalise

__all__ = [
    "SpectrogramConfig", "log_mel", "mel_filterbank", "frames_covering", "mel_frames_for", "samples_for_frames",
    "stft_complex", "stft_magnitude", "istft", "LearnedScaler", "ScalerStats", "normalise", "denormalise",
]
