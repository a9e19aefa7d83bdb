"""Halve an ONNX graph's size on disk while keeping float32 compute.

Large float32 initializers are stored as float16 and followed by a Cast back to float32; onnxruntime folds
those casts when it builds the session, so inference runs the same float32 kernels as before (on CPU fp16
kernels are rare and slow). The only change is the weights' rounding to float16 (relative error <= 2^-11).
This is what keeps the shipped default bundle under its size budget.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper


def store_weights_fp16(model: onnx.ModelProto, min_elements: int = 1024) -> onnx.ModelProto:
    """Return a copy of `model` whose float32 initializers with >= `min_elements` values are stored as fp16."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    casts = []
    keep = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims, dtype=np.int64)) < min_elements:
            keep.append(init)
            continue
        values = numpy_helper.to_array(init)
        if np.abs(values).max(initial=0.0) > 60_000:  # would overflow fp16: leave it exact
            keep.append(init)
            continue
        half_name = f"{init.name}__fp16"
        keep.append(numpy_helper.from_array(values.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first keeps the node list topologically sorted
    onnx.checker.check_model(model)
    return model


def compress_file(path: Path, min_elements: int = 1024) -> tuple[int, int]:
    """Rewrite an .onnx file in place (atomically) with fp16-stored weights; returns (bytes before, after)."""
    path = Path(path)
    before = path.stat().st_size
    model = store_weights_fp16(onnx.load(str(path)), min_elements)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return before, path.stat().st_size


def round_weights_fp16(module: torch.nn.Module, min_elements: int = 1024) -> torch.nn.Module:
    """A copy of `module` whose parameters get the rounding `store_weights_fp16` gives the ONNX graph (same size
    and range rule), kept float32: the torch programs of a --compact bundle then compute what its graphs do."""
    rounded = copy.deepcopy(module)
    with torch.no_grad():
        for param in rounded.parameters():
            if param.numel() >= min_elements and float(param.abs().max()) <= 60_000:
                param.copy_(param.half().float())
    return rounded
