"""Noise schedule helpers (paper section 2.2 and 4.2.2): diffusers' schedulers as they are, cosine schedule.

Training draws integer timesteps t ~ U{0, ..., T-1} per sample and noises with `DDPMScheduler.add_noise`
(x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eq. 6); the U-Net receives t as float (the reference passed
integer timesteps through a path that broke them, its issues #3/#4).

What the U-Net regresses is `DiffusionConfig.prediction_type`: the paper's noise eps, or the velocity
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022). On the cosine schedule abar_{T-1} is 2.4e-9, so an
eps model's implied x_0 = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar) near t = T is its eps error times 2e4: it cannot
say what the first sampling steps most need, the data's mean spectrum (models/README.md measures it). A v model
predicts about -x_0 there instead.
"""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from training.config import DiffusionConfig


def train_scheduler(cfg: DiffusionConfig | None = None) -> DDPMScheduler:
    cfg = cfg or DiffusionConfig()
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type)


def ddim_scheduler(cfg: DiffusionConfig | None = None) -> DDIMScheduler:
    """The paper's sampler (DDIM) over the same training schedule."""
    cfg = cfg or DiffusionConfig()
    return DDIMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type)


def training_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
                    ) -> torch.Tensor:
    """What the U-Net learns to output for x_t = add_noise(x0, noise, t): noise (epsilon), velocity
    (v_prediction) or x0 (sample), as the scheduler's prediction_type says. Same shape as x0."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction type {kind!r}")


def sample_timesteps(batch: int, num_train_timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample integer timesteps, uniform over {0, ..., num_train_timesteps - 1}. [batch] int64 (CPU)."""
    return torch.randint(0, num_train_timesteps, (batch,), generator=generator, dtype=torch.long)


def noise_batch(x0: torch.Tensor, scheduler: DDPMScheduler, generator: torch.Generator,
                rows: tuple[int, int] | None = None, total: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise clean x0 [B, ...] at random timesteps. Noise and timesteps are drawn on the CPU from `generator`
    (same values on any device) and moved to x0's device. Returns (x_t, noise, t) with t int64 [B].
    `rows`, `total`: x0 is rows [lo, hi) of a batch of `total` (one rank's shard): the draws are made for the
    whole batch and these rows kept, so the shard is noised exactly as inside the whole batch."""
    lo, hi = rows or (0, x0.shape[0])
    total = x0.shape[0] if rows is None else total
    noise = torch.randn((total, *x0.shape[1:]), generator=generator, dtype=torch.float32)[lo:hi]
    noise = noise.to(x0.device, x0.dtype)
    t = sample_timesteps(total, scheduler.config.num_train_timesteps, generator)[lo:hi].to(x0.device)
    return scheduler.add_noise(x0, noise, t), noise, t
