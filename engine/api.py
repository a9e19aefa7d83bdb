"""The engine's Python API: load a bundle once, render many times.

    engine = Engine.load("bundles/default")
    result = engine.generate(seconds=10.0, seed=7)        # RenderResult(audio [C, N] float32, sample_rate, info)
    write_audio("out.wav", result.audio, result.sample_rate)

Tasks (engine/tasks/) build on `encode`, `decode`, `denoiser`, `generator_for` and the sampler in engine.sampling.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from engine.backends.onnx import OnnxDenoiser, OnnxVocoder, default_threads
from engine.bundle import Bundle, load_bundle
from engine.render import RenderResult, encode, reconstruct_phase, vocode

__all__ = ["Engine", "RenderResult"]


class Engine:
    """Holds a validated bundle and its model sessions for the life of the process. Not thread-safe: one
    render at a time (engine.jobs runs renders on one worker thread)."""

    def __init__(self, bundle: Bundle, denoiser, vocoder, threads: int) -> None:
        self.bundle = bundle
        self.denoiser = denoiser
        self.vocoder = vocoder
        self.threads = threads

    @classmethod
    def load(cls, bundle_dir: str | Path, device: str = "auto", threads: int | None = None) -> "Engine":
        """Validate the bundle (BundleError on any defect) and open its graphs on `device`
        ("auto" | "cpu" | "cuda" | "tensorrt"). `threads` caps onnxruntime's and torch's intra-op threads
        (default: the cores this process may use); torch's setting is process-wide."""
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        bundle = load_bundle(bundle_dir)
        threads = threads or default_threads()
        use_fp16 = device in ("cuda", "tensorrt") or (device == "auto" and torch.cuda.is_available())

        def graph(name: str) -> Path:
            half = bundle.fp16_path(name) if use_fp16 else None
            return half or bundle.files[name]
        denoiser = OnnxDenoiser(graph("unet.onnx"), device, threads)
        vocoder = OnnxVocoder(graph("vocoder.onnx"), device, threads)
        return cls(bundle, denoiser, vocoder, threads)

    # ------------------------------------------------------------------ properties

    @property
    def sample_rate(self) -> int:
        return self.bundle.sample_rate

    @property
    def channels(self) -> int:
        return self.bundle.channels

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def device(self) -> str:
        return self.denoiser.device

    @property
    def defaults(self):
        return self.bundle.defaults

    # ------------------------------------------------------------------ building blocks for tasks

    @staticmethod
    def generator_for(seed: int | None) -> tuple[int, torch.Generator]:
        """(seed, CPU generator). seed None draws a fresh one (reported back so a render can be repeated)."""
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return seed, torch.Generator().manual_seed(seed)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [C, samples] at the model rate -> U-Net model space [C, n_mels, frames]."""
        return encode(audio, self.bundle)

    def decode(self, x: torch.Tensor, samples: int, phase: str = "fast", gl_iters: int | None = None,
               gl_init: str | None = None, generator: torch.Generator | None = None,
               callback: Callable[[int], None] | None = None, init_phase: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """U-Net space mel [C, n_mels, T] -> (audio [C, samples], magnitude [C, n_freqs, frames])."""
        frames = -(-samples // self.bundle.spectrogram.hop_length) + 1
        magnitude = vocode(x[None], self.bundle, self.vocoder, frames)[0]
        iters = self.defaults.gl_iters if gl_iters is None else gl_iters
        init = gl_init or self.defaults.gl_init
        audio = reconstruct_phase(magnitude, self.bundle, samples, phase, iters, init, generator, callback,
                                  init_phase)
        return audio, magnitude

    # ------------------------------------------------------------------ tasks

    def generate(self, seconds: float, seed: int | None = None, steps: int | None = None,
                 sampler: str | None = None, gl_iters: int | None = None,
                 callback: Callable[[float], None] | None = None, phase: str = "fast",
                 gl_init: str | None = None, progress: bool = False) -> RenderResult:
        """Unconditional music of `seconds` (exact: round(seconds * sample_rate) samples). Defaults come from
        the bundle's manifest. `callback(fraction)` after each sampler step and phase iteration."""
        from engine.tasks.generate import generate
        return generate(self, seconds, seed=seed, steps=steps, sampler=sampler, gl_iters=gl_iters,
                        callback=callback, phase=phase, gl_init=gl_init, progress=progress)
