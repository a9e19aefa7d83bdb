"""The data prior of an epsilon-prediction U-Net: the training data's mean spectrum, weighed against the model's x0.

An eps model's clean estimate x0 = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar) multiplies its eps error by
sqrt((1 - abar) / abar), which is 2e4 at the last timestep of the cosine schedule (abar = 2.4e-9). The first sampling
steps then take clipped noise as x0, and what they most need, the data's mean level per mel bin (real piano sits
+0.4 in the mids and -0.55 in the top bins of model space), never enters the sample: the measured result was a mean
spectrum near 0 in every bin, mids 15 dB too quiet and the top octave 20 dB too loud (models/README.md).

The bundle's manifest may carry, under diffusion.prior, the per-bin mean and variance of the training data in U-Net
space and `error`, the eps error variance assumed. Each step's x0 then becomes the Gaussian posterior mean

    x0 = mean + k (x0_hat - mean),   k = var / (var + error * (1 - abar) / abar)

so near pure noise it is the data mean (the Bayes answer when x_t holds no signal) and from mid noise down it is the
model's own (k > 0.9 below t = 760 with error 5e-4). The eps handed to the sampler is the one that x0 implies, so
every sampler and task runs unchanged. A v- or x0-prediction model needs none of this (its x0 is well conditioned).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

DEFAULT_PRIOR_ERROR = 5e-4  # best of 1e-6 ... 1e-2 on the piano candidate (bench/RESULTS.md, "Data prior")


@dataclass(frozen=True)
class DataPrior:
    """Per-mel-bin mean and variance of the training data in U-Net space (after the scaler), and the eps error
    variance `error` that weighs the model's x0 against them."""
    mean: tuple[float, ...]
    var: tuple[float, ...]
    error: float = DEFAULT_PRIOR_ERROR

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.var) or not self.mean:
            raise ValueError(f"mean and var must be non-empty and of one length, got {len(self.mean)} and "
                             f"{len(self.var)}")
        if not all(math.isfinite(v) for v in self.mean):
            raise ValueError("mean holds a value that is not a finite number")
        if not all(math.isfinite(v) and v > 0 for v in self.var):
            raise ValueError("var must hold positive finite numbers")
        if not (math.isfinite(self.error) and self.error > 0):
            raise ValueError(f"error must be a positive finite number, got {self.error!r}")

    @cached_property
    def bin_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) as float64 [1, 1, n_mels, 1], built once (every sampling step uses them)."""
        shape = (1, 1, -1, 1)
        return (torch.tensor(self.mean, dtype=torch.float64).reshape(shape),
                torch.tensor(self.var, dtype=torch.float64).reshape(shape))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": [round(v, 6) for v in self.mean], "var": [round(v, 6) for v in self.var], "error": self.error}

    @classmethod
    def from_dict(cls, data: Any) -> "DataPrior":
        """Parse the manifest's diffusion.prior object (ValueError naming the problem)."""
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object with 'mean', 'var' and 'error'")
        unknown = sorted(set(data) - {"mean", "var", "error"})
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        values = {}
        for key in ("mean", "var"):
            items = data.get(key)
            if not isinstance(items, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in items):
                raise ValueError(f"'{key}' must be a list of numbers")
            values[key] = tuple(float(v) for v in items)
        error = data.get("error", DEFAULT_PRIOR_ERROR)
        if not isinstance(error, (int, float)) or isinstance(error, bool):
            raise ValueError(f"'error' must be a number, got {error!r}")
        return cls(values["mean"], values["var"], float(error))


def prior_weighted_eps(eps: torch.Tensor, x: torch.Tensor, abar: torch.Tensor, prior: DataPrior) -> torch.Tensor:
    """The eps implied by the prior-weighted x0 (see the module docstring).
    eps, x: [B, C, n_mels, T]; abar: [B] alpha-bar of each row's timestep. Returns eps' like eps."""
    mean, var = (v.to(eps.device) for v in prior.bin_tensors)
    a = abar.double().reshape(-1, 1, 1, 1)
    x64, s = x.double(), (1 - a).sqrt()
    x0 = (x64 - s * eps.double()) / a.sqrt()
    keep = var / (var + prior.error * (1 - a) / a)
    x0 = mean + keep * (x0 - mean)
    return ((x64 - a.sqrt() * x0) / s).to(eps.dtype)


class PriorWeightedDenoiser:
    """Wraps an eps denoiser (engine.backends: (x [B, C, n_mels, T], t [B] float) -> eps) so that its x0 is weighed
    against `prior` at every call. `alphas_cumprod`: the training schedule's alpha-bar table [T]. Other attributes
    (device, precision, ...) are the wrapped denoiser's."""

    def __init__(self, inner, prior: DataPrior, alphas_cumprod: torch.Tensor) -> None:
        self.inner = inner
        self.prior = prior
        self.alphas_cumprod = alphas_cumprod.double().cpu()

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **conditioning) -> torch.Tensor:
        eps = self.inner(x, t, **conditioning)
        index = t.detach().cpu().round().long().clamp(0, len(self.alphas_cumprod) - 1)
        abar = self.alphas_cumprod[index].to(eps.device)
        return prior_weighted_eps(eps, x.to(eps.device), abar, self.prior)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # only reached for names the wrapper itself lacks
