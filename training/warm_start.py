"""Initial weights from an earlier model (fine-tuning): a bundle's ONNX graph or a training checkpoint.

A bundle's graphs name their initializers after the torch state_dict (export/onnx_export.py), with `__fp16` appended
to weights that a `--compact` export stored as float16; those are widened back to float32. A training checkpoint
gives its EMA weights when it has them (what an export ships), else the raw ones. Every tensor of the model must be
found with its shape, or nothing is loaded: a partial warm start would silently train a different network.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FP16_SUFFIX = "__fp16"


class WarmStartError(ValueError):
    pass


def _onnx_tensors(path: Path) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return {init.name.removesuffix(FP16_SUFFIX): torch.from_numpy(numpy_helper.to_array(init).copy()).float()
            for init in graph.initializer}


def _checkpoint_tensors(path: Path, kind: str) -> dict[str, torch.Tensor]:
    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or "model" not in data:
        raise WarmStartError(f"{path} is not a msanii-train checkpoint")
    if data.get("kind") != kind:
        raise WarmStartError(f"{path} is a {data.get('kind')} checkpoint, not a {kind} one")
    return data.get("ema") or data["model"]


def initial_tensors(source: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state tensors of `source` (a bundle folder, a .onnx graph or a .pt checkpoint) and where they came from."""
    path = Path(source)
    if path.is_dir():
        path = path / f"{kind}.onnx"
    if not path.is_file():
        raise WarmStartError(f"--init-from: {path} does not exist")
    if path.suffix == ".onnx":
        return _onnx_tensors(path), str(path)
    return _checkpoint_tensors(path, kind), str(path)


@torch.no_grad()
def load_initial_weights(model: nn.Module, source: str | Path, kind: str) -> str:
    """Copy every parameter and buffer of `model` from `source`; returns a one-line description."""
    tensors, origin = initial_tensors(source, kind)
    state = model.state_dict()
    optional = tuple(getattr(model, "optional_on_warm_start", ()))
    fresh = [name for name in state if name not in tensors and name.startswith(optional)] if optional else []
    missing = [name for name in state if name not in tensors and name not in fresh]
    wrong = [f"{name} {tuple(tensors[name].shape)} vs {tuple(t.shape)}" for name, t in state.items()
             if name in tensors and tensors[name].shape != t.shape]
    if missing or wrong:
        detail = (f"{len(missing)} tensors missing (first: {missing[0]})" if missing
                  else f"shapes differ: {wrong[0]}")
        raise WarmStartError(f"--init-from {origin} does not fit this {kind} ({detail}); use a model of the same "
                             f"preset")
    model.load_state_dict({name: tensors[name].to(t.dtype) if name in tensors else t for name, t in state.items()})
    kept = f" ({len(fresh)} new ones keep their initialisation: {', '.join(fresh)})" if fresh else ""
    return f"{len(state) - len(fresh)} tensors from {origin}{kept}"
