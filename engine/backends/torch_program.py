"""torch backends: the bundle's exported programs (`unet.pt2`, `vocoder.pt2`, written by `torch.export`) run by
torch on any device it has, CUDA included. They need no training code: an ExportedProgram carries its graph and
weights, as the ONNX files do.

Why a second backend: onnxruntime's CUDA provider needs onnxruntime-gpu plus matching CUDA/cuDNN libraries, which
a machine with a working torch CUDA install may lack; and on a GPU the sampler and Griffin-Lim should stay on the
device too (engine.Engine.tensor_device), which torch tensors allow without a copy per step.

Inputs may live on any device; outputs come back float32 on the device of the input, so the tasks that keep their
tensors on the CPU work unchanged (at one copy each way per call), and those that keep them on the model's device
(generation) pay nothing. `precision` "fp16"/"bf16" runs the graph under torch.autocast (weights stay float32;
norms and softmax stay float32 as autocast decides). `cuda_graphs` records each input shape's forward once and
replays it: one launch per call instead of hundreds, which matters for small models and few frames.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from torch.export.passes import move_to_device_pass

from engine.backends import PRECISIONS
from engine.backends.onnx import BackendError, beat_feed

AUTOCAST_DTYPES = dict(zip(PRECISIONS, (None, torch.float16, torch.bfloat16)))  # None: plain fp32
MAX_GRAPHS = 4  # recorded CUDA graphs kept (one per input shape); each holds its activations' memory


def torch_device(device: str) -> torch.device:
    """"cpu" | "cuda" | "cuda:N" | "auto" (CUDA when torch has it) -> a usable torch.device (BackendError if not)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"{device} was requested but torch sees no CUDA device (CPU-only torch build, or no "
                           "driver); use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise BackendError(f"the torch backend runs on cpu or cuda, not {device!r}")
    return dev


def load_program(path: Path, device: torch.device) -> tuple[torch.nn.Module, int]:
    """(module of an ExportedProgram file on `device`, the fewest frames its first input accepts)."""
    try:
        with warnings.catch_warnings():  # torch warns that the archive's read-only buffer backs the weights
            warnings.simplefilter("ignore", UserWarning)
            program = torch.export.load(str(path))
            if device.type != "cpu":
                # An exported graph records the device of the constants it creates and asserts its inputs' device:
                # torch's pass rewrites both (moving the module's weights alone would not).
                program = move_to_device_pass(program, device)
            return program.module(), _min_frames(program)
    except Exception as exc:  # torch raises assorted types for a corrupt or foreign archive
        raise BackendError(f"cannot load {path.name} as a torch exported program: {exc}") from exc


def _min_frames(program: torch.export.ExportedProgram) -> int:
    """Lower bound of the first user input's last (time) axis from the program's range constraints."""
    first = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == first)
    frames = node.meta["val"].shape[-1]
    if isinstance(frames, int):
        return frames
    expr = frames.node.expr
    bounds = {sym: program.range_constraints[sym].lower for sym in expr.free_symbols}
    return int(expr.subs(bounds))


class _GraphCache:
    """CUDA graphs of `forward` per input shape, captured as torch documents (warm-up on a side stream, autocast
    weight cache off). Replays copy the inputs into the recorded buffers and clone the recorded output."""

    def __init__(self, forward: Callable[..., torch.Tensor], device: torch.device) -> None:
        self.forward = forward
        self.device = device  # streams and graphs belong to one GPU: capture and replay on the program's
        self.graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = OrderedDict()

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype) for a in inputs)
        with torch.cuda.device(self.device):
            if key not in self.graphs:
                if len(self.graphs) >= MAX_GRAPHS:
                    self.graphs.popitem(last=False)
                self.graphs[key] = self._capture(inputs)
            self.graphs.move_to_end(key)
            graph, static_inputs, static_output = self.graphs[key]
            for buffer, value in zip(static_inputs, inputs):
                buffer.copy_(value)
            graph.replay()
            return static_output.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]):
        static_inputs = [a.clone() for a in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.forward(*static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.forward(*static_inputs)
        return graph, static_inputs, static_output


class _TorchProgram:
    """Shared by the denoiser and the vocoder: device placement, precision, optional CUDA graphs."""

    def __init__(self, path: Path, device: str = "auto", precision: str = "fp32", cuda_graphs: bool = False) -> None:
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
        self.torch_device = torch_device(device)
        if cuda_graphs and self.torch_device.type != "cuda":
            raise BackendError("CUDA graphs need a CUDA device")
        self.path = path
        self.precision = precision
        self.device = self.torch_device.type  # "cpu" | "cuda", as the onnxruntime backends report
        self.module, self.min_frames = load_program(path, self.torch_device)
        if self.torch_device.type == "cuda":
            # Renders repeat a few fixed shapes: let cuDNN time its convolution algorithms once per shape.
            torch.backends.cudnn.benchmark = True
        self._run = _GraphCache(self._forward, self.torch_device) if cuda_graphs else self._forward

    def _forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        dtype = AUTOCAST_DTYPES[self.precision]
        # cache_enabled=False: a weight cast cached by autocast would not survive CUDA graph capture.
        with torch.inference_mode(), torch.autocast(self.torch_device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None, cache_enabled=False):
            return self.module(*inputs).float()

    def run(self, *inputs: torch.Tensor, timed: tuple[int, ...] = (0,)) -> torch.Tensor:
        """Run the program; `timed`: indices of the inputs whose last axis is time (padded together)."""
        home = inputs[0].device
        moved = [a.detach().to(self.torch_device, torch.float32) for a in inputs]
        frames = moved[0].shape[-1]
        if frames < self.min_frames:
            # torch.export cannot trace the U-Net with a one-frame bottleneck (a contiguity guard on its size),
            # so its program starts at two frame blocks: a shorter input runs on a wrap-padded canvas that long
            # (clips under ~1.5 s at paper size; in-distribution noise, unlike zeros) and is cropped back.
            for i in timed:
                a = moved[i]
                moved[i] = a.repeat(*[1] * (a.ndim - 1), -(-self.min_frames // frames))[..., :self.min_frames]
        return self._run(*moved)[..., :frames].to(home)


class TorchDenoiser(_TorchProgram):
    """The U-Net program: x [B, C, n_mels, T] float32, t [B] float32 (and, for a beat-conditioned one, beat
    [B, beat_features, T]) -> prediction like x (on x's device)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        placeholders = [n for n in self.module.graph.nodes if n.op == "placeholder"]
        self.beat_features = 0
        if len(placeholders) >= 3:  # x, t, beat
            self.beat_features = int(placeholders[2].meta["val"].shape[1])

    def __call__(self, x: torch.Tensor, t: torch.Tensor, beat: torch.Tensor | None = None) -> torch.Tensor:
        if not self.beat_features:
            return self.run(x, t.reshape(-1).to(x.device))
        grid = beat_feed(beat, x.shape[0], self.beat_features, x.shape[-1]).to(x.device)  # no copy when there
        return self.run(x, t.reshape(-1).to(x.device), grid, timed=(0, 2))


class TorchVocoder(_TorchProgram):
    """The vocoder program: normalised mel [B, C, n_mels, T] -> magnitude [B, C, n_freqs, T] (on mel's device)."""

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        return self.run(mel)
