"""U-Net and vocoder -> ONNX graphs with dynamic batch and time axes, plus the torch-vs-onnxruntime parity check.

Graph I/O (the bundle contract, read by engine/bundle.py and engine/backends/): unet x [B, C, n_mels, T] float32, t [B] float32 -> prediction like x
(a beat-conditioned U-Net also takes beat [B, beat_features, T] float32, engine.beat_grid; zeros: no grid);
vocoder mel [B, C, n_mels, T] float32 -> magnitude [B, C, n_freqs, T] float32. fp16 variants keep float32 I/O
(casts inside the graph), so the engine feeds them the same arrays.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17
UNET_INPUTS = ("x", "t")
BEAT_INPUT = "beat"
UNET_OUTPUT = "prediction"
VOCODER_INPUT = "mel"
VOCODER_OUTPUT = "magnitude"


class ExportError(RuntimeError):
    """Export or its parity check failed; the message says which model and why."""


def _export(model: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_axes: dict, opset: int) -> None:
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is the robust path for these plain conv/attention graphs; its deprecation
        # notice and the instance-norm training-mode note (InstanceNorm has no running stats) are expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(str(path))


def export_unet(model: nn.Module, path: Path, channels: int, n_mels: int, frames: int,
                opset: int = OPSET) -> Path:
    """Export the U-Net; `frames` (a multiple of its frame multiple) is only the tracing length."""
    x = torch.randn(1, channels, n_mels, frames)
    t = torch.full((1,), 500.0)
    axes = {"x": {0: "batch", 3: "frames"}, "t": {0: "batch"}, UNET_OUTPUT: {0: "batch", 3: "frames"}}
    args, names = (x, t), list(UNET_INPUTS)
    if beat_features(model):
        args, names = (x, t, torch.randn(1, beat_features(model), frames)), [*names, BEAT_INPUT]
        axes[BEAT_INPUT] = {0: "batch", 2: "frames"}
    _export(model, args, path, names, [UNET_OUTPUT], axes, opset)
    return path


def beat_features(model: nn.Module) -> int:
    """Width of a U-Net's beat-grid input (0: it has none)."""
    return int(getattr(getattr(model, "cfg", None), "beat_features", 0) or 0)


def export_vocoder(model: nn.Module, path: Path, channels: int, n_mels: int, frames: int,
                   opset: int = OPSET) -> Path:
    mel = torch.rand(1, channels, n_mels, frames) * 2 - 1
    axes = {VOCODER_INPUT: {0: "batch", 3: "frames"}, VOCODER_OUTPUT: {0: "batch", 3: "frames"}}
    _export(model, (mel,), path, [VOCODER_INPUT], [VOCODER_OUTPUT], axes, opset)
    return path


def convert_fp16(src: Path, dst: Path) -> Path:
    """float16 weights and compute with float32 inputs/outputs kept (Cast nodes at the edges). Uses onnxruntime's
    own converter (shipped with onnxruntime), so no extra package is needed."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    # InstanceNormalization and the Exp of the vocoder overflow/underflow easily in half: keep them float32.
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=["InstanceNormalization", "Exp"])
    _sort_nodes(half.graph)  # the converter appends its input casts at the end of the node list
    onnx.save(half, str(dst))
    onnx.checker.check_model(str(dst))
    return dst


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Topologically sort `graph.node` in place (stable: keeps the original order where it is valid)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("float16 graph has a cycle or an undefined input")
        for node in ready:
            available.update(node.output)
        ordered += ready
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def cpu_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def unet_parity(model: nn.Module, path: Path, channels: int, n_mels: int, lengths: tuple[int, ...],
                generator: torch.Generator) -> dict:
    """Max abs error torch vs onnxruntime (CPU) on random inputs at each length (batch 2, two timesteps)."""
    session = cpu_session(path)
    errors = {}
    for frames in lengths:
        x = torch.randn(2, channels, n_mels, frames, generator=generator)
        t = torch.rand(2, generator=generator) * 999.0
        feeds, inputs = {"x": x.numpy(), "t": t.numpy()}, (x, t)
        if beat_features(model):
            beat = torch.randn(2, beat_features(model), frames, generator=generator)
            feeds[BEAT_INPUT], inputs = beat.numpy(), (x, t, beat)
        expected = model.eval()(*inputs).numpy()
        got = session.run([UNET_OUTPUT], feeds)[0]
        errors[str(frames)] = float(np.abs(expected - got).max())
    return {"frames": list(lengths), "max_abs_error": max(errors.values()), "per_length": errors,
            "inputs": "randn x (batch 2), t ~ U[0, 999)"}


@torch.no_grad()
def vocoder_parity(model: nn.Module, path: Path, channels: int, n_mels: int, lengths: tuple[int, ...],
                   generator: torch.Generator) -> dict:
    """Max abs error on random normalised mels in [-1, 1]; also the error relative to the largest magnitude,
    since the vocoder's output is an exponential and its scale depends on the weights."""
    session = cpu_session(path)
    errors, relative = {}, {}
    for frames in lengths:
        mel = torch.rand(2, channels, n_mels, frames, generator=generator) * 2 - 1
        expected = model.eval()(mel).numpy()
        got = session.run([VOCODER_OUTPUT], {VOCODER_INPUT: mel.numpy()})[0]
        errors[str(frames)] = float(np.abs(expected - got).max())
        relative[str(frames)] = errors[str(frames)] / max(float(np.abs(expected).max()), 1e-12)
    return {"frames": list(lengths), "max_abs_error": max(errors.values()),
            "max_rel_error": max(relative.values()), "per_length": errors,
            "inputs": "uniform mel in [-1, 1] (batch 2)"}
