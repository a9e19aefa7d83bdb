"""Training losses.

- U-Net: the simplified DDPM objective of the paper's eq. 17, mean squared error between the true noise and the
  predicted noise (or velocity, training.diffusion.training_target). (The reference implementation trained with an L1
  loss; we follow the paper.)
- Vocoder: spectral convergence (eq. 1) + log-magnitude L1 (eq. 2), the L1 taken as a mean over elements so its
  scale does not depend on crop length or batch size.

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


def vocoder_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = LOG_EPS,
                 sc_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """sc_weight * spectral convergence + log-magnitude (the paper: sc_weight 1).
    Returns (total, {"sc": ..., "log_mag": ...}) for logging."""
    sc = spectral_convergence_loss(predicted, target)
    log_mag = log_magnitude_loss(predicted, target, eps)
    return sc_weight * sc + log_mag, {"sc": float(sc.detach()), "log_mag": float(log_mag.detach())}
