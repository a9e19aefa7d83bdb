"""Interpolation between two recordings (paper section 5.3).

Both mels are noised to `strength` and mixed with `ratio` (the share of A), then denoised. Two mixes:
- "linear" (the paper): x_t = r * x_t^A + (1 - r) * x_t^B with independent noises. The noise part then has
  standard deviation sqrt(r^2 + (1 - r)^2) of what the sampler assumes at that timestep (0.71 at r = 0.5): the
  model is told "timestep t" about a sample that is less noisy, so it removes noise that is not there and the
  result comes out smoothed.
- "slerp" (default): the clean mels are mixed linearly and the two noises are interpolated spherically,
  slerp(eps_A, eps_B, r), which keeps the noise at exactly the scheduled level for every ratio. The
  `noise_scale` in the info reports the measured ratio of the noise's std to the scheduled one for each mix.
The output has the length of the shorter input, at input A's rate, channels and format.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from engine.audio_io import NativeAudio, check_output_path, float_to_samples, output_layout
from engine.dsp.spectrogram import frames_covering, stft_complex
from engine.editing import from_model, load_source, to_model
from engine.finite import check_output
from engine.limits import UNBOUNDED, Limits, read_header
from engine.regions import RegionError
from engine.render import Progress, RenderError
from engine.sampling import make_scheduler, sample, start_index_for
from engine.tasks.finish import EditResult, finish_edit
from engine.tasks.settings import LAYOUT, LIMITS, OUTPUT, SAMPLING, resolve_gl_iters, resolve_sampler, resolve_steps
from engine.tasks.task import REQUIRED, Param, Task

if TYPE_CHECKING:
    from engine.api import Engine

MIXES = ("slerp", "linear")


def slerp(a: torch.Tensor, b: torch.Tensor, ratio: float) -> torch.Tensor:
    """Spherical interpolation with weight `ratio` on `a` (treating each tensor as one vector)."""
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:
        return ratio * a + (1 - ratio) * b
    wa = torch.sin(ratio * omega) / torch.sin(omega)
    wb = torch.sin((1 - ratio) * omega) / torch.sin(omega)
    return (wa * a.double() + wb * b.double()).to(a.dtype)


def mix_noised(x0_a: torch.Tensor, x0_b: torch.Tensor, noise_a: torch.Tensor, noise_b: torch.Tensor,
               alpha_bar: float, ratio: float, mix: str) -> tuple[torch.Tensor, float]:
    """The sampler's start x_t and the std of its noise part relative to the scheduled sqrt(1 - alpha_bar)."""
    s, n = alpha_bar ** 0.5, (1 - alpha_bar) ** 0.5
    if mix == "linear":
        noise = ratio * noise_a + (1 - ratio) * noise_b
    elif mix == "slerp":
        noise = slerp(noise_a, noise_b, ratio)
    else:
        raise RenderError(f"unknown interpolation mix {mix!r}: use {' or '.join(MIXES)}")
    x_t = s * (ratio * x0_a + (1 - ratio) * x0_b) + n * noise
    return x_t, float(noise.std())


def interpolate(engine: "Engine", source_a: str | Path | NativeAudio, source_b: str | Path | NativeAudio,
                ratio: float = 0.5, *, strength: float = 0.5, mix: str = "slerp", seed: int | None = None,
                steps: int | None = None, sampler: str | None = None, gl_iters: int | None = None,
                callback: Callable[[float], None] | None = None, output: str | Path | None = None,
                overwrite: bool = False, format: str | None = None,
                bit_depth: int | str | None = None, limits: Limits | None = None) -> EditResult:
    """Blend A and B: `ratio` is A's share (0..1), `strength` the noise level the mix starts from (0..1].
    Only the first (shorter input's length) of each file is read."""
    if not 0.0 <= ratio <= 1.0:
        raise RegionError(f"ratio must be between 0 and 1 (the share of the first input), got {ratio}")
    if not 0.0 < strength <= 1.0:
        raise RegionError(f"strength must be in (0, 1], got {strength}")
    if mix not in MIXES:
        raise RenderError(f"unknown interpolation mix {mix!r}: use {' or '.join(MIXES)}")
    limits = limits or UNBOUNDED
    lengths = [_seconds_of(s, limits) for s in (source_a, source_b)]
    seconds = min(lengths)
    if seconds > engine.max_seconds:
        raise RegionError(f"inputs longer than {engine.max_seconds:.0f} s: trim them first")
    limits.check_render(seconds, "this interpolation")
    a, b = (load_source(s, limits, frames=_frames_for(s, seconds)) for s in (source_a, source_b))
    if output is not None:
        check_output_path(output, overwrite)
    seconds = min(a.seconds, b.seconds)
    sampler = resolve_sampler(sampler, engine.defaults.sampler)
    steps = resolve_steps(engine, steps)
    iters = resolve_gl_iters(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    fmt, subtype = output_layout(a, format, bit_depth=bit_depth)
    bundle, cfg = engine.bundle, engine.bundle.spectrogram
    start = time.perf_counter()

    n_model = round(seconds * engine.sample_rate)
    audio_a = to_model(a.to_float(0, round(seconds * a.sample_rate)), a.sample_rate, engine)[:, :n_model]
    audio_b = to_model(b.to_float(0, round(seconds * b.sample_rate)), b.sample_rate, engine)[:, :n_model]
    n_model = min(audio_a.shape[-1], audio_b.shape[-1])
    audio_a, audio_b = audio_a[:, :n_model], audio_b[:, :n_model]
    frames = frames_covering(n_model, cfg)  # as engine.decode counts them: the last frame covers the end
    covered = (frames - 1) * cfg.hop_length
    audio_a = torch.nn.functional.pad(audio_a, (0, covered - n_model))
    audio_b = torch.nn.functional.pad(audio_b, (0, covered - n_model))
    padded = -(-frames // bundle.frame_multiple) * bundle.frame_multiple
    x0_a = torch.nn.functional.pad(engine.encode(audio_a), (0, padded - frames), mode="replicate")
    x0_b = torch.nn.functional.pad(engine.encode(audio_b), (0, padded - frames), mode="replicate")

    scheduler = make_scheduler(sampler, **bundle.diffusion.to_dict(), steps=steps)
    scheduler.set_timesteps(steps)
    first = start_index_for(steps, strength)
    t0 = int(scheduler.timesteps[first])
    alpha_bar = float(scheduler.alphas_cumprod[t0])
    noise_a = torch.randn(x0_a.shape, generator=generator)
    noise_b = torch.randn(x0_b.shape, generator=generator)
    x_t, noise_std = mix_noised(x0_a, x0_b, noise_a, noise_b, alpha_bar, ratio, mix)
    run_steps = steps - first
    tracker = Progress(callback, {"sampling": 2.0 * run_steps, "phase": float(iters)})
    x = sample(engine.denoiser, x_t[None].to(engine.tensor_device), scheduler, steps, start_index=first,
               generator=generator, disable=True, callback=lambda s: tracker.update("sampling", 2.0 * (s["i"] + 1)))
    sampling_s = time.perf_counter() - start

    # phase starts from the audio mix in the same proportion: the transients of both inputs where they are
    init_phase = stft_complex(ratio * audio_a + (1 - ratio) * audio_b, cfg)  # [C, F, frames]
    audio, _ = engine.decode(x[0].cpu(), n_model, gl_iters=iters, generator=generator, init_phase=init_phase,
                             callback=lambda i: tracker.update("phase", float(i + 1)))
    tracker.update("phase", float(iters))
    out_len = round(seconds * a.sample_rate)
    new = from_model(audio, engine, a.sample_rate, a.channels, out_len)
    check_output(new)  # before the clip, which would turn an infinity into a full-scale sample
    samples = float_to_samples(np.clip(new, -1.0, 1.0).T, subtype, dither=True)
    info = {"ratio": ratio, "strength": strength, "mix": mix, "noise_scale": noise_std, "start_timestep": t0,
            "sampler": sampler, "steps": steps, "unet_calls": run_steps, "gl_iters": iters,
            "seconds": out_len / a.sample_rate, "input_a": str(a.path) if a.path else None,
            "input_b": str(b.path) if b.path else None, "input_sample_rate": a.sample_rate, "format": fmt,
            "subtype": subtype, "peak": float(np.abs(new).max(initial=0.0)), "sampling_s": sampling_s}
    return finish_edit(engine, "interpolate", seed, start, samples, a.sample_rate, fmt, subtype, info, output,
                       overwrite)


def _seconds_of(source: str | Path | NativeAudio, limits: Limits) -> float:
    """An input's length from its header (no samples read), checked against the input limit."""
    if isinstance(source, NativeAudio):
        return source.seconds
    header = read_header(source)
    limits.check_input(header.seconds, header.path)
    return header.seconds


def _frames_for(source: str | Path | NativeAudio, seconds: float) -> int | None:
    """Frames of `source` that cover `seconds` (one spare for rounding); None reads everything."""
    if isinstance(source, NativeAudio):
        return None
    return round(seconds * read_header(source).sample_rate) + 1


TASK = Task(
    "interpolate", "blend two recordings through the model", interpolate,
    params=(Param("source_a", "path", REQUIRED, "first input audio file"),
            Param("source_b", "path", REQUIRED, "second input audio file"),
            Param("ratio", "float", 0.5, "share of A, 0..1"),
            Param("strength", "float", 0.5, "noise level to start from, 0..1"),
            Param("mix", "str", "slerp", "slerp (noise kept at the scheduled level) or linear (the paper's)", MIXES),
            *SAMPLING, *OUTPUT, *LAYOUT, *LIMITS),
    description="Noise both inputs' mels to strength, mix them with ratio (A's share) and denoise (paper 5.3). "
                "Output: the shorter input's length at A's rate and format.",
    edits_input=True)
