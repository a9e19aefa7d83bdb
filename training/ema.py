"""Exponential moving average of model weights (paper Table 2: start step 2000, decay 0.995, every 10 steps)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from training.config import EMAConfig


class EMA:
    """Holds a frozen copy of `model`. Call `update(model, step)` after optimiser step `step` (1-based):
    up to `start_step` the copy tracks the weights exactly; afterwards, on every `every`-th step,
    ema <- decay * ema + (1 - decay) * weights. Buffers are always copied."""

    def __init__(self, model: nn.Module, cfg: EMAConfig) -> None:
        if not 0.0 <= cfg.decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {cfg.decay}")
        if cfg.every < 1:
            raise ValueError(f"EMA every must be >= 1, got {cfg.every}")
        self.cfg = cfg
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        ema_params = dict(self.model.named_parameters())
        if step <= self.cfg.start_step:
            for name, param in model.named_parameters():
                ema_params[name].copy_(param.detach())
        elif step % self.cfg.every == 0:
            for name, param in model.named_parameters():
                ema_params[name].lerp_(param.detach().to(ema_params[name].dtype), 1.0 - self.cfg.decay)
        ema_buffers = dict(self.model.named_buffers())
        for name, buf in model.named_buffers():
            ema_buffers[name].copy_(buf)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
