"""Checkpoint files (the training -> export contract: export/ reads what this writes), written atomically.

Layout of RUN_DIR/<kind>/: `last.pt` (latest, atomically replaced), `step-0001000.pt` (periodic), `losses.csv`.
Each .pt is one torch.save dict with "format": "msanii-daw-checkpoint", "version": 1, "kind", "step", "preset",
"model_config", "spectrogram", "diffusion" (U-Net; None for the vocoder), "model", "ema", "scaler",
"scaler_stats", "optimizer", "lr_scheduler", "rng", "train_config", "data".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "msanii-daw-checkpoint"
VERSION = 1
LAST = "last.pt"
REQUIRED_KEYS = ("kind", "step", "preset", "model_config", "spectrogram", "diffusion", "model", "ema", "scaler",
                 "scaler_stats", "optimizer", "lr_scheduler", "rng", "train_config", "data")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not ours; the message names the file and the problem."""


def periodic_name(step: int) -> str:
    return f"step-{step:07d}.pt"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write `payload` (plus format/version) to `path` via a temporary file in the same folder, fsync, rename:
    a crash or Ctrl-C mid-write leaves the previous file intact."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = {"format": FORMAT, "version": VERSION, **payload}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, kind: str | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; `kind` ("unet"/"vocoder") if given must match."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)  # our own files
    except Exception as exc:  # a truncated/corrupt file: say which one
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a msanii-daw checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}, this code reads {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}")
    if kind is not None and data["kind"] != kind:
        raise CheckpointError(f"{path} holds a {data['kind']} checkpoint, expected {kind}")
    return data
