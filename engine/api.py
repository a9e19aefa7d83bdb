"""The engine's Python API: load a bundle once, render many times.

    engine = Engine.load("models/default")
    result = render(engine, "generate", seconds=10.0, seed=7)   # RenderResult(audio [C, N] float32, sample_rate, info)
    write_audio("out.wav", result.audio, result.sample_rate)

`Engine` holds the resources (bundle, model sessions, devices) and the building blocks tasks are made of
(`encode`, `decode`, `denoiser`, `generator_for`); the tasks themselves are registered in engine.tasks and run
through `render` (or called directly: `engine.tasks.inpaint.inpaint(engine, "mix.wav", ["12.5-16"])`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from engine.backends import BACKENDS
from engine.beat_grid import check_guidance, tempo_grid
from engine.backends.onnx import BackendError, OnnxDenoiser, OnnxVocoder, default_threads
from engine.bundle import UNET_FILE, VOCODER_FILE, Bundle, load_bundle
from engine.dsp.spectrogram import frames_covering
from engine.prior import PriorWeightedDenoiser
from engine.render import RenderResult, encode, max_clip_seconds, reconstruct_phase, vocode
from engine.sampling import make_scheduler
from engine.tasks import get_task, tasks

if TYPE_CHECKING:
    from engine.regions import Tempo

__all__ = ["BACKENDS", "Engine", "RenderResult", "choose_backend", "render", "tasks"]

def choose_backend(backend: str, device: str, bundle: Bundle) -> str:
    """"onnx" or "torch" for a request. "auto" takes torch on a CUDA device when the bundle has its exported
    programs: there the sampler and Griffin-Lim stay on the GPU with the models, where onnxruntime would hand
    every step's tensors back to the CPU (and its CUDA provider may be missing). Everything else runs onnxruntime."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    if backend == "torch" and not bundle.has_programs:
        raise BackendError(f"bundle {bundle.name!r} has no torch programs (unet.pt2, vocoder.pt2): re-export it "
                           "with msanii-export --torch, or use the onnx backend")
    if backend != "auto":
        return backend
    wants_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "torch" if wants_gpu and torch.cuda.is_available() and bundle.has_programs else "onnx"


class Engine:
    """Holds a validated bundle and its model sessions for the life of the process, and the building blocks
    tasks use. Not thread-safe: one render at a time (engine.serving runs renders on one worker thread)."""

    def __init__(self, bundle: Bundle, denoiser, vocoder, threads: int, backend: str = "onnx",
                 tensor_device: torch.device | None = None, use_prior: bool = True) -> None:
        self.bundle = bundle
        # An eps model's x0 is weighed against the bundle's data prior, where it has one (engine.prior says why);
        # use_prior=False runs the bare model (for comparisons).
        self.denoiser = with_prior(denoiser, bundle) if use_prior else denoiser
        self.vocoder = vocoder
        self.threads = threads
        self.backend = backend
        # Where tasks keep the tensors they sample: the models' device for torch backends (no copy per step), the
        # CPU for onnxruntime (its sessions take and return host arrays).
        self.tensor_device = tensor_device or torch.device("cpu")
        # Where the phase reconstruction runs: on the GPU whenever the models are there, whatever the backend
        # (Griffin-Lim is most of a GPU render's remaining work when it runs on a CPU; bench/RESULTS.md).
        if self.tensor_device.type == "cuda":
            self.dsp_device = self.tensor_device
        else:
            on_gpu = denoiser.device in ("cuda", "tensorrt") and torch.cuda.is_available()
            self.dsp_device = torch.device("cuda" if on_gpu else "cpu")

    @classmethod
    def load(cls, bundle_dir: str | Path, device: str = "auto", threads: int | None = None, backend: str = "auto",
             precision: str | None = None, cuda_graphs: bool = False, use_prior: bool = True) -> "Engine":
        """Validate the bundle (BundleError on any defect) and open its models on `device`
        ("auto" | "cpu" | "cuda" | "cuda:N" | "tensorrt"). `threads` caps onnxruntime's and torch's intra-op
        threads (default: the cores this process may use); torch's setting is process-wide.
        `backend`: "onnx", "torch" (the bundle's exported programs; needs `msanii-export --torch`) or "auto"
        (choose_backend). torch only: `precision` "fp32" (default) | "fp16" | "bf16" (autocast), `cuda_graphs`.
        `use_prior`: weigh an eps model's x0 against the bundle's diffusion.prior when it has one (engine.prior)."""
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        bundle = load_bundle(bundle_dir)
        threads = threads or default_threads()
        backend = choose_backend(backend, device, bundle)
        if backend == "torch":
            from engine.backends.torch_program import TorchDenoiser, TorchVocoder
            precision = precision or "fp32"
            denoiser = TorchDenoiser(bundle.program_path(UNET_FILE), device, precision, cuda_graphs)
            vocoder = TorchVocoder(bundle.program_path(VOCODER_FILE), device, precision, cuda_graphs)
            return cls(bundle, denoiser, vocoder, threads, backend, denoiser.torch_device, use_prior)
        if precision not in (None, "fp32") or cuda_graphs:
            raise BackendError("precision and CUDA graphs are torch-backend settings (onnxruntime picks the fp16 "
                               "graphs on a GPU by itself): add --backend torch")
        use_fp16 = device in ("cuda", "tensorrt") or (device == "auto" and torch.cuda.is_available())

        def graph(name: str) -> Path:
            half = bundle.fp16_path(name) if use_fp16 else None
            return half or bundle.files[name]
        denoiser = OnnxDenoiser(graph(UNET_FILE), device, threads)
        vocoder = OnnxVocoder(graph(VOCODER_FILE), device, threads)
        return cls(bundle, denoiser, vocoder, threads, "onnx", use_prior=use_prior)

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
    def max_seconds(self) -> float:
        """The longest clip one render makes (engine.render.max_clip_seconds)."""
        return max_clip_seconds(self.bundle)

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

    def default_tempo(self, seed: int) -> "Tempo | None":
        """The tempo a generation that names none follows: for a beat-conditioned bundle, a training piece's tempo
        and metre drawn by `seed` from the manifest's tempo prior (engine.beat_grid.BeatSettings.drawn_tempo), or
        without one the default BPM in 4/4; None for any other bundle."""
        from engine.regions import Tempo

        beat = self.bundle.beat
        if beat is None:
            return None
        drawn = beat.drawn_tempo(seed)
        return Tempo(beat.default_bpm) if drawn is None else Tempo(drawn[0], numerator=drawn[1])

    def denoiser_with_beat(self, tempo: "Tempo | Sequence[Tempo] | None", offset_s: float = 0.0):
        """(denoise(x, t), BPM it follows or None). For a beat-conditioned bundle: the denoiser following the beat
        grid of `tempo` (bar 1 at tempo.origin_s of the file) for frames that start `offset_s` into the file;
        a sequence of tempos gives each batch row its own (generation's drawn tempos; the first one's BPM is
        returned); tempo None: no grid (an edit of audio whose tempo is not known; generation resolves its
        default with `default_tempo` first). Any other bundle: its plain denoiser.
        The guidance scale is the (first) tempo's guidance (None: the manifest's beat.guidance, 1 unless the
        export chose otherwise); above 1, each call also predicts with no grid, in the same U-Net
        batch, and returns no-grid + guidance * (grid - no-grid):
        classifier-free guidance towards the grid (strikes on the beat, the tempo held), at twice the U-Net cost,
        on the steps at timesteps t >= beat.guidance_from * T (the manifest's; 0: all).
        bench/RESULTS.md ("Beat guidance") measures it."""
        from engine.regions import Tempo

        beat = self.bundle.beat
        if beat is None or tempo is None:
            return self.denoiser, None
        rows = [tempo] if isinstance(tempo, Tempo) else list(tempo)
        chosen = rows[0].guidance
        scale = beat.guidance if chosen is None else check_guidance(chosen)
        guided_from = beat.guidance_from * self.bundle.diffusion.num_train_timesteps
        spec = self.bundle.spectrogram
        rate = spec.sample_rate / spec.hop_length
        grids: dict[int, torch.Tensor] = {}  # per canvas length (a circular sampler pads it)

        def grid_for(frames: int) -> torch.Tensor:
            """[rows, BEAT_FEATURES, frames]: one grid for every batch row, or one per row."""
            if frames not in grids:
                grids[frames] = torch.stack([torch.from_numpy(tempo_grid(
                    frames, rate, t.bpm, t.numerator, t.denominator, t.origin_s, offset_s=offset_s)) for t in rows]
                ).to(self.tensor_device)
            return grids[frames]

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            grid = grid_for(x.shape[-1]).expand(batch, -1, -1)
            if scale == 1.0 or float(t.max()) < guided_from:
                return self.denoiser(x, t, beat=grid)
            both = self.denoiser(torch.cat([x, x]), torch.cat([t, t]), beat=torch.cat([grid, torch.zeros_like(grid)]))
            with_grid, without = both[:batch], both[batch:]
            return without + scale * (with_grid - without)

        return denoise, float(rows[0].bpm)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [C, samples] at the model rate -> U-Net model space [C, n_mels, frames]."""
        return encode(audio, self.bundle)

    def decode(self, x: torch.Tensor, samples: int, phase: str = "fast", gl_iters: int | None = None,
               gl_init: str | None = None, generator: torch.Generator | None = None,
               callback: Callable[[int], None] | None = None, init_phase: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """U-Net space mel [C, n_mels, T] -> (audio [C, samples], magnitude [C, n_freqs, frames]), on x's device.
        The phase reconstruction runs on the engine's `dsp_device` whatever x's is (a task that samples on the CPU,
        or an onnxruntime CUDA engine, still gets its Griffin-Lim on the GPU)."""
        frames = frames_covering(samples, self.bundle.spectrogram)
        magnitude = vocode(x[None].to(self.tensor_device), self.bundle, self.vocoder, frames)[0]
        magnitude = magnitude.to(self.dsp_device)
        iters = self.defaults.gl_iters if gl_iters is None else gl_iters
        init = gl_init or self.defaults.gl_init
        audio = reconstruct_phase(magnitude, self.bundle, samples, phase, iters, init, generator, callback,
                                  None if init_phase is None else init_phase.to(self.dsp_device))
        return audio.to(x.device), magnitude.to(x.device)


def with_prior(denoiser, bundle: Bundle):
    """`denoiser` weighed against the bundle's data prior (engine.prior), or itself when the bundle has none."""
    settings = bundle.diffusion
    if settings.prior is None:
        return denoiser
    schedule = make_scheduler("ddim", settings.num_train_timesteps, settings.beta_schedule, settings.prediction_type)
    return PriorWeightedDenoiser(denoiser, settings.prior, schedule.alphas_cumprod)


def render(engine: Engine, task: str, callback: Callable[[float], None] | None = None, **params) -> RenderResult:
    """Run the registered task `task` (engine.tasks) with its keyword `params`: the one front door to every task,
    the same one msanii-render and the OSC server go through. `callback(fraction)` reports progress."""
    return get_task(task).run(engine, params, callback)
