"""U-Net and vocoder -> torch exported programs (`torch.export`, saved as .pt2) for the engine's torch backend.

Same I/O as the ONNX graphs (export.onnx_export): dynamic batch and time axes, the U-Net's time axis a multiple of
its frame multiple. A program file holds its graph and float32 weights, so the engine loads it with torch alone.
The parity check loads the saved file back, as the engine will, and compares it with the model.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from export.onnx_export import ExportError, beat_features

MAX_BATCH = 64
MAX_FRAMES = 16384  # twice the engine's longest render: guards only, no cost


def _save(model: nn.Module, args: tuple, dynamic_shapes: tuple, path: Path) -> Path:
    try:
        with torch.no_grad():
            program = torch.export.export(model.eval(), args, dynamic_shapes=dynamic_shapes)
        torch.export.save(program, str(path))
    except Exception as exc:  # torch.export raises many types (guards, unsupported ops)
        raise ExportError(f"torch.export failed for {path.name}: {exc}") from exc
    return path


def export_unet_program(model: nn.Module, path: Path, channels: int, n_mels: int, multiple: int) -> Path:
    """x [B, C, n_mels, multiple * k], t [B] -> prediction; B and k >= 2 dynamic.

    k starts at 2: with one frame at the bottleneck, convolution's output-stride rule branches on that size being 1
    and torch.export specialises it away. The engine's torch backend runs shorter inputs on a wrap-padded canvas."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    blocks = torch.export.Dim("blocks", min=2, max=MAX_FRAMES // multiple)
    x = torch.randn(2, channels, n_mels, multiple * 2)
    t = torch.full((2,), 500.0)
    width = beat_features(model)
    if width:  # the beat grid [B, width, T] shares x's time axis
        return _save(model, (x, t, torch.randn(2, width, multiple * 2)),
                     ({0: batch, 3: multiple * blocks}, {0: batch}, {0: batch, 2: multiple * blocks}), path)
    return _save(model, (x, t), ({0: batch, 3: multiple * blocks}, {0: batch}), path)


def export_vocoder_program(model: nn.Module, path: Path, channels: int, n_mels: int) -> Path:
    """mel [B, C, n_mels, T] -> magnitude [B, C, n_freqs, T]; B and T dynamic."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    frames = torch.export.Dim.AUTO  # a named Dim trips on a guard the solver cannot prove (min(2T, 64T) == 2T)
    mel = torch.rand(2, channels, n_mels, 24) * 2 - 1
    return _save(model, (mel,), ({0: batch, 3: frames},), path)


@torch.no_grad()
def program_parity(model: nn.Module, path: Path, inputs_at: dict[int, tuple[torch.Tensor, ...]]) -> dict:
    """Max abs and relative error of the saved program against `model`, per length (inputs per frame count)."""
    with warnings.catch_warnings():  # torch warns that the archive's read-only buffer backs the weights
        warnings.simplefilter("ignore", UserWarning)
        program = torch.export.load(str(path)).module()
    errors, relative = {}, {}
    for frames, inputs in inputs_at.items():
        expected = model.eval()(*inputs)
        err = float((program(*inputs) - expected).abs().max())
        errors[str(frames)] = err
        relative[str(frames)] = err / max(float(expected.abs().max()), 1e-12)
    return {"frames": list(inputs_at), "max_abs_error": max(errors.values()),
            "max_rel_error": max(relative.values()), "per_length": errors}
