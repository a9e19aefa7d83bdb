"""Per-frequency gain calibration of a trained vocoder: its output level brought to the data's, bin by bin.

The vocoder predicts log-magnitudes and is trained on spectral convergence + log-magnitude L1. The L1 term pulls
each bin towards the median of its log-magnitude, below the energy mean wherever a bin's magnitude is peaky over
time (partials that come and go, transients), so the prediction runs quiet: -2 to -7 dB per octave on held-out
piano, worst in the top octave (the REPORT's vocoder table). Its output is exp(conv(h) + bias), so one factor per
STFT bin is an exact shift of the output bias: g_f = sqrt(sum |S|^2 / sum |S_hat|^2) over training crops, the
gain that gives each bin its true energy. Clamped to +-12 dB: a bin the data barely excites should not be blown up.

    msanii-train calibrate-vocoder --out RUN [--batches 64]   # RUN/vocoder/last.pt -> RUN/vocoder/calibrated.pt
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel, stft_magnitude
from training.checkpoint import save_checkpoint
from training.models import Vocoder, VocoderConfig

MAX_GAIN_DB = 12.0
CALIBRATION_SEED = 7_777  # apart from every training step's data stream


@torch.no_grad()
def measure_gain(vocoder: Vocoder, scaler: LearnedScaler, batches: list[torch.Tensor],
                 spectrogram: SpectrogramConfig) -> torch.Tensor:
    """log gain per STFT bin [n_freqs] that matches the vocoder's output energy to the truth over `batches`
    (each audio [B, C, samples])."""
    true_energy = predicted_energy = 0.0
    for audio in batches:
        target = stft_magnitude(audio, spectrogram).double()  # [B, C, F, T]
        predicted = vocoder(scaler(log_mel(audio, spectrogram))).double()
        true_energy = true_energy + (target ** 2).sum(dim=(0, 1, 3))
        predicted_energy = predicted_energy + (predicted ** 2).sum(dim=(0, 1, 3))
    log_gain = 0.5 * torch.log(true_energy.clamp_min(1e-20) / predicted_energy.clamp_min(1e-20))
    limit = MAX_GAIN_DB / 20 * math.log(10)
    return log_gain.clamp(-limit, limit).float()


def calibrate_checkpoint(checkpoint: dict[str, Any], dataset, batches: int = 64, batch_size: int = 8,
                         out: Path | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """A copy of a vocoder checkpoint with the gain folded into the output bias (and the gains in dB [n_freqs]);
    written to `out` when given. The optimiser state is dropped: the copy is for export, not for resuming."""
    if checkpoint["kind"] != "vocoder":
        raise ValueError(f"a {checkpoint['kind']} checkpoint has no vocoder to calibrate")
    spectrogram = SpectrogramConfig.from_dict(checkpoint["spectrogram"])
    vocoder = Vocoder(VocoderConfig.from_dict(checkpoint["model_config"])).eval()
    vocoder.load_state_dict(checkpoint["model"])
    scaler = LearnedScaler()
    scaler.load_state_dict(checkpoint["scaler"])
    scaler.eval()
    rng = np.random.default_rng(CALIBRATION_SEED)
    audio = [torch.stack([dataset.sample_crop(rng) for _ in range(batch_size)]).float() for _ in range(batches)]
    log_gain = measure_gain(vocoder, scaler, audio, spectrogram)
    with torch.no_grad():
        vocoder.detokenize.proj.bias.add_(log_gain)
    calibrated = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "lr_scheduler", "grad_scaler")}
    calibrated.update(model=vocoder.state_dict(), optimizer={}, lr_scheduler={}, grad_scaler={},
                      calibration={"kind": "per-bin energy gain", "batches": batches, "batch_size": batch_size,
                               "max_gain_db": MAX_GAIN_DB})
    gain_db = (log_gain * 20 / math.log(10)).numpy()
    if out is not None:
        save_checkpoint(calibrated, out)
    return calibrated, gain_db
