"""onnxruntime backends: CUDA (or TensorRT) when it really works here, else CPU.

onnxruntime-gpu lists the CUDA/TensorRT providers whether or not a GPU and its libraries are present, so "auto"
asks torch whether a CUDA device exists, then checks which provider the session actually got.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
_PROVIDERS = {"cpu": ["CPUExecutionProvider"],
              "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
              "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


class BackendError(RuntimeError):
    """A model graph could not be loaded on the requested device."""


def default_threads() -> int:
    """Cores this process may use (affinity-aware); onnxruntime's own default ignores cgroup/affinity limits."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device != "auto":
        return device
    gpu = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
    return "cuda" if gpu else "cpu"


def make_session(path: Path, device: str = "auto", threads: int | None = None) -> tuple[ort.InferenceSession, str]:
    """Open `path` on `device`; returns (session, device it really runs on: "cpu"|"cuda"|"tensorrt")."""
    wanted = resolve_device(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1  # the graphs are one chain of big ops: parallelism lives inside them
    # Workers sleep instead of spinning between ops: each op here is large, and on a shared machine spinning
    # threads steal the cores the other workers need (bench/RESULTS.md, "Figures behind code choices").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: onnxruntime's CPU arena keeps each graph's peak activations (~0.4 GB each for the paper U-Net and
    # vocoder at 190 s) for the process's life, stacking them under the phase reconstruction's own peak.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # our own fallback report replaces onnxruntime's provider warnings
    try:
        session = ort.InferenceSession(str(path), options, providers=_PROVIDERS[wanted])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BackendError(f"cannot load {path.name} on {wanted}: {exc}") from exc
    got = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
           "TensorrtExecutionProvider": "tensorrt"}[session.get_providers()[0]]
    if device not in ("auto", "cpu") and got == "cpu":
        raise BackendError(f"{device} was requested but onnxruntime could not use it for {path.name} "
                           "(driver/CUDA/cuDNN libraries missing?); use --device cpu or auto")
    return session, got


class OnnxDenoiser:
    """The U-Net graph: x [B, C, n_mels, T] float32, t [B] float32 (and, for a beat-conditioned one, beat
    [B, beat_features, T]) -> prediction, same shape as x."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None) -> None:
        self.session, self.device = make_session(path, device, threads)
        self.path = path
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.beat_features = int(inputs["beat"].shape[1]) if "beat" in inputs else 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, beat: torch.Tensor | None = None) -> torch.Tensor:
        feeds = {"x": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32),
                 "t": np.ascontiguousarray(t.detach().cpu().reshape(-1).numpy(), dtype=np.float32)}
        if self.beat_features:
            feeds["beat"] = np.ascontiguousarray(
                beat_feed(beat, x.shape[0], self.beat_features, x.shape[-1]).cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, feeds)[0])


def beat_feed(beat: torch.Tensor | None, batch: int, features: int, frames: int) -> torch.Tensor:
    """The beat input [batch, features, frames] from a grid [1 | batch, features, frames] (None: zeros, no grid),
    on the grid's device (an expanded view: no copy)."""
    if beat is None:
        return torch.zeros(batch, features, frames)
    if tuple(beat.shape[1:]) != (features, frames) or beat.shape[0] not in (1, batch):
        raise ValueError(f"beat grid of shape {tuple(beat.shape)} does not fit x: expected [1 or {batch}, "
                         f"{features}, {frames}]")
    return beat.detach().expand(batch, features, frames)


class OnnxVocoder:
    """The vocoder graph: normalised mel [B, C, n_mels, T] -> magnitude [B, C, n_freqs, T]."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None) -> None:
        self.session, self.device = make_session(path, device, threads)
        self.path = path
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        feeds = {self.input_name: np.ascontiguousarray(mel.detach().cpu().numpy(), dtype=np.float32)}
        return torch.from_numpy(self.session.run(None, feeds)[0])
