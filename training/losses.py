"""Training losses.

- U-Net: the simplified DDPM objective of the paper's eq. 17, mean squared error between the true noise and the
  predicted noise (or velocity, training.diffusion.training_target). (The reference implementation trained with an L1
  loss; we follow the paper.)
- Vocoder: spectral convergence (eq. 1) + log-magnitude L1 (eq. 2), the L1 taken as a mean over elements so its
  scale does not depend on crop length or batch size. Optionally (not in the paper) a mel-consistency L1: the
  predicted magnitude taken back to log-mel against the input's. The paper's two terms leave the vocoder free to
  blur along time where the mel is sharp (its 3x3 convolution sees neighbouring frames): held-out audio through
  candidate 6's vocoder changed 0.296 nats per frame in log-mel against the input's 0.308 (bench/RESULTS.md).

All losses are computed in float32 whatever precision the model ran in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOG_EPS = 1e-5


def diffusion_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E ||eps - eps_theta(x_t, t)||^2 (eq. 17; or the same on v for a v-prediction model), averaged over all
    elements. Shapes: any, equal."""
    return F.mse_loss(predicted.float(), target.float())


def spectral_convergence_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|| |S| - |S_hat| ||_F / || |S| ||_F (eq. 1) over the whole batch (one Frobenius norm over all elements,
    so a quiet example cannot blow the ratio up). predicted/target: magnitudes [..., n_freqs, frames]."""
    predicted, target = predicted.float(), target.float()
    return torch.linalg.vector_norm(target - predicted) / torch.linalg.vector_norm(target).clamp_min(1e-8)


def log_magnitude_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = LOG_EPS) -> torch.Tensor:
    """mean | log(|S| + eps) - log(|S_hat| + eps) | (eq. 2 as a mean). Magnitudes [..., n_freqs, frames]."""
    return F.l1_loss(torch.log(predicted.float() + eps), torch.log(target.float() + eps))


def mel_consistency_loss(predicted: torch.Tensor, target: torch.Tensor, filterbank: torch.Tensor,
                         floor: float) -> torch.Tensor:
    """mean | log(mel(|S_hat|) + floor) - log(mel(|S|) + floor) |: the log-mel (as the U-Net and the measures see
    it) of the predicted magnitude against the target's. Magnitudes [..., n_freqs, frames]; filterbank
    [n_freqs, n_mels]."""
    fb = filterbank.to(predicted.device, torch.float32)
    mel_of = lambda m: torch.log(torch.matmul(m.float().transpose(-1, -2), fb) + floor)
    return F.l1_loss(mel_of(predicted), mel_of(target))


def vocoder_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = LOG_EPS, sc_weight: float = 1.0,
                 mel_weight: float = 0.0, filterbank: torch.Tensor | None = None, floor: float = 1e-5
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """sc_weight * spectral convergence + log-magnitude (the paper: sc_weight 1, mel_weight 0), plus mel_weight *
    mel consistency when mel_weight > 0 (needs the filterbank and log floor of the spectrogram config).
    Returns (total, {"sc": ..., "log_mag": ..., ["mel": ...]}) for logging."""
    sc = spectral_convergence_loss(predicted, target)
    log_mag = log_magnitude_loss(predicted, target, eps)
    total, parts = sc_weight * sc + log_mag, {"sc": float(sc.detach()), "log_mag": float(log_mag.detach())}
    if mel_weight > 0:
        if filterbank is None:
            raise ValueError("mel_weight > 0 needs the mel filterbank")
        mel = mel_consistency_loss(predicted, target, filterbank, floor)
        total, parts["mel"] = total + mel_weight * mel, float(mel.detach())
    return total, parts
