"""Signal processing shared by training and engine: one definition of STFT, mel and scaling."""
from engine.dsp.config import SpectrogramConfig
from engine.dsp.spectrogram import (
    log_mel,
    mel_filterbank,
    mel_frames_for,
    samples_for_frames,
    stft_complex,
    stft_magnitude,
    istft,
)
from engine.dsp.scaler import LearnedScaler, ScalerStats, normalise, denormalise

__all__ = [
    "SpectrogramConfig", "log_mel", "mel_filterbank", "mel_frames_for", "samples_for_frames",
    "stft_complex", "stft_magnitude", "istft", "LearnedScaler", "ScalerStats", "normalise", "denormalise",
]
