"""The learned feature scaler of Appendix A: standard scaling then min-max to [-1, 1].

Training mode uses the batch's statistics and updates running ones (momentum decays every update, Algorithm 1/2);
eval mode uses the frozen running statistics. `ScalerStats` is what export freezes into the bundle, and
`normalise`/`denormalise` are the one definition of the affine map both sides apply.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ScalerStats:
    mean: float
    var: float
    min: float
    max: float
    eps: float = 1e-5
    range_min: float = -1.0
    range_max: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ScalerStats":
        stats = cls(**{k: float(v) for k, v in data.items()})
        if not stats.max > stats.min:
            raise ValueError(f"scaler max ({stats.max}) must exceed min ({stats.min})")
        if stats.var < 0:
            raise ValueError(f"scaler variance must be >= 0, got {stats.var}")
        return stats


def _affine(mean, var, lo, hi, stats: ScalerStats, x: torch.Tensor) -> torch.Tensor:
    y = (x - mean) / torch.sqrt(torch.as_tensor(var + stats.eps, dtype=x.dtype))
    y = (y - lo) / (hi - lo) * (stats.range_max - stats.range_min) + stats.range_min
    return y.clamp(stats.range_min, stats.range_max)


def normalise(log_mel: torch.Tensor, stats: ScalerStats) -> torch.Tensor:
    """log-mel (any shape) -> model space [-1, 1] with frozen statistics."""
    return _affine(stats.mean, stats.var, stats.min, stats.max, stats, log_mel)


def denormalise(x: torch.Tensor, stats: ScalerStats) -> torch.Tensor:
    """Model space (any shape) -> log-mel; values are clamped to the range first, as in training."""
    x = x.clamp(stats.range_min, stats.range_max)
    y = (x - stats.range_min) / (stats.range_max - stats.range_min) * (stats.max - stats.min) + stats.min
    return y * torch.sqrt(torch.as_tensor(stats.var + stats.eps, dtype=x.dtype)) + stats.mean


def batch_statistics(x: torch.Tensor, eps: float) -> tuple[float, float, float, float]:
    """(mean, variance, min, max of the standardised values) of `x` (any shape), computed in x's dtype: what a batch
    contributes to the scaler."""
    mean, var = x.mean().item(), x.var(unbiased=False).item()
    standard = (x - mean) / (var + eps) ** 0.5
    return mean, var, standard.min().item(), standard.max().item()


class LearnedScaler(nn.Module):
    """Running-statistics scaler. Buffers live in checkpoints; `stats()` freezes them for export."""

    def __init__(self, momentum: float = 1e-3, momentum_decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.momentum_decay = momentum_decay
        self.register_buffer("momentum", torch.tensor(momentum, dtype=torch.float64))
        for name, init in (("running_mean", 0.0), ("running_var", 1.0), ("running_min", -1.0), ("running_max", 1.0)):
            self.register_buffer(name, torch.tensor(init, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def _update(self, mean, var, lo, hi) -> None:
        if not bool(self.fitted):
            self.running_mean.fill_(mean), self.running_var.fill_(var)
            self.running_min.fill_(lo), self.running_max.fill_(hi)
            self.fitted.fill_(True)
            return
        self.momentum.mul_(self.momentum_decay)
        m = self.momentum
        for buf, value in ((self.running_mean, mean), (self.running_var, var),
                           (self.running_min, lo), (self.running_max, hi)):
            buf.mul_(1 - m).add_(m * value)

    @torch.no_grad()
    def fit(self, log_mels: list[torch.Tensor]) -> ScalerStats:
        """Set the running statistics to the mean of each batch's (mean, var, min, max) over `log_mels` (batches of
        any shape) and mark the scaler fitted: the model space that batch statistics of such batches give on
        average, fixed from then on (a trainer that keeps the scaler in eval mode)."""
        if not log_mels:
            raise ValueError("fit needs at least one batch")
        rows = torch.tensor([batch_statistics(batch.detach().double(), self.eps) for batch in log_mels])
        mean, var, lo, hi = rows.mean(0).tolist()
        for buf, value in ((self.running_mean, mean), (self.running_var, var), (self.running_min, lo),
                           (self.running_max, max(hi, lo + 1e-6))):
            buf.fill_(value)
        self.fitted.fill_(True)
        return self.stats()

    def stats(self) -> ScalerStats:
        if not bool(self.fitted):
            raise RuntimeError("scaler has not seen any training data yet")
        return ScalerStats(float(self.running_mean), float(self.running_var), float(self.running_min),
                           float(self.running_max), self.eps)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log-mel (any shape) -> [-1, 1]. Train mode: batch statistics, running ones updated; eval: frozen."""
        if not self.training:
            return normalise(log_mel, self.stats())
        mean, var, lo, hi = batch_statistics(log_mel.detach(), self.eps)
        self._update(mean, var, lo, hi)
        batch = ScalerStats(mean, var, lo, max(hi, lo + 1e-6), self.eps)
        return normalise(log_mel, batch)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> log-mel with the running statistics."""
        return denormalise(x, self.stats())
