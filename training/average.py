"""Checkpoint averaging: the uniform mean of the weights of several checkpoints of one run.

A longer average than the run's own EMA (decay 0.995 every 10 steps: ~2,000 steps) smooths the weight noise that
small CPU batches leave (batch 2 at lr 2e-4), the same idea as a post-hoc EMA (Karras et al. 2024, "Analyzing and
Improving the Training Dynamics of Diffusion Models"). The result is an export source, not a run to resume: it
carries the newest checkpoint's configuration, scaler and data record, the mean as its `ema` (and `model`)
weights, `averaged` = which files and steps went in, and no optimiser state.

    msanii-train average --out runs/x/unet/average.pt runs/x/unet/step-0006000.pt runs/x/unet/step-0008000.pt ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

WEIGHTS = ("ema", "model")
_SAME = ("kind", "preset", "model_config", "spectrogram", "diffusion")


def average_checkpoints(paths: Sequence[str | Path], weights: str = "ema") -> dict:
    """Checkpoint dict whose `ema` and `model` are the mean of the `weights` ("ema" or "model") of `paths`
    (at least two, one run's: the same kind, preset, model, spectrogram and diffusion settings). Floating tensors
    are averaged in float64 and stored in their own dtype; integer buffers come from the newest checkpoint."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be {' or '.join(WEIGHTS)}, got {weights!r}")
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    if len({Path(p).resolve() for p in paths}) != len(paths):
        raise ValueError("a checkpoint is named twice")
    checkpoints = [(Path(p), load_checkpoint(p)) for p in paths]
    checkpoints.sort(key=lambda item: item[1]["step"])
    newest_path, newest = checkpoints[-1]
    for path, ckpt in checkpoints:
        for key in _SAME:
            if ckpt.get(key) != newest.get(key):
                raise CheckpointError(f"{path} differs from {newest_path} in {key}: not the same run's model")
        if ckpt.get(weights) is None:
            raise CheckpointError(f"{path} holds no {weights} weights")
    states = [ckpt[weights] for _, ckpt in checkpoints]
    names = set(states[-1])
    for (path, _), state in zip(checkpoints, states):
        if set(state) != names:
            raise CheckpointError(f"{path} has other tensors than {newest_path}")
    mean = {}
    for name, tensor in states[-1].items():
        if tensor.is_floating_point():
            total = sum(state[name].double() for state in states)
            mean[name] = (total / len(states)).to(tensor.dtype)
        else:
            mean[name] = tensor.clone()
    averaged = {k: v for k, v in newest.items() if k not in ("optimizer", "lr_scheduler", "grad_scaler")}
    averaged.update(model=mean, ema=mean, optimizer={}, lr_scheduler={}, grad_scaler={},
                    averaged={"weights": weights, "files": [str(p) for p, _ in checkpoints],
                              "steps": [int(c["step"]) for _, c in checkpoints]})
    return averaged


def write_average(paths: Sequence[str | Path], out: str | Path, weights: str = "ema",
                  overwrite: bool = False) -> dict:
    """average_checkpoints, written atomically to `out` (an existing file only with `overwrite`)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if any(Path(p).resolve() == out.resolve() for p in paths):
        raise ValueError(f"{out} is one of the checkpoints averaged")
    averaged = average_checkpoints(paths, weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(averaged, out)
    return averaged
