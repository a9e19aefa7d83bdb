"""Seamless loops of N seconds or N bars at a BPM: the last sample flows into the first.

1. The mel is generated periodic: circular masked sampling (engine.masked_sampling) rolls the mel by a different
   offset before every U-Net call, so the wrap point always has context on both sides; the vocoder also sees the
   mel wrap-padded.
2. Phase: fast Griffin-Lim on three periods of the magnitude; the middle period is kept, and its first few
   milliseconds are crossfaded with what followed the period in the Griffin-Lim output, so the loop's last sample
   is followed by exactly the sample that followed it there (no step at the wrap).
3. Exact length: the period is a whole number of STFT hops at the model rate; it is resampled (three periods,
   middle kept, so the result is exactly periodic) to exactly round(seconds * rate) samples at the output rate.
   The tempo is exact; the pitch moves by at most half a hop over the loop (reported as `pitch_shift_cents`).

With `source`, the loop is made from existing audio instead (audio-to-audio at `strength`, made periodic).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from engine.audio_io import NativeAudio, resample
from engine.boundary import loop_wrap_audio, seam_report
from engine.dsp.crossfade import crossfade
from engine.dsp.linked_phase import linked_griffin_lim
from engine.editing import load_source, to_model
from engine.finite import check_output
from engine.limits import SAMPLE_RATES, UNBOUNDED, Limits, read_header
from engine.masked_sampling import count_unet_calls, masked_sample
from engine.regions import Length, RegionError, Tempo, length_seconds
from engine.render import MAX_FRAMES, Progress, RenderResult, max_clip_seconds, vocode
from engine.tasks.finish import task_info
from engine.tasks.settings import LIMITS, SAMPLING, TEMPO, masked_config, resolve_gl_iters
from engine.tasks.task import REQUIRED, Param, Task

if TYPE_CHECKING:
    from engine.api import Engine

VOCODER_WRAP_FRAMES = 16  # mel frames of wrap padding each side for the vocoder's receptive field
WRAP_FADE_SECONDS = 0.020


def loop(engine: "Engine", length: Length, *, tempo: Tempo | None = None, seed: int | None = None,
         steps: int | None = None, sampler: str | None = None, gl_iters: int | None = None,
         sample_rate: int | None = None, source: str | Path | NativeAudio | None = None, strength: float = 0.7,
         callback: Callable[[float], None] | None = None, limits: Limits | None = None) -> RenderResult:
    """A loop of exactly `length` (seconds, or BarsLength with `tempo`) at `sample_rate` (default: the model's,
    or the source's). Returns float audio [channels, samples] whose end flows into its start."""
    seconds = length_seconds(length, tempo)
    bundle, cfg = engine.bundle, engine.bundle.spectrogram
    (limits or UNBOUNDED).check_render(seconds, "this loop")
    src = None
    if source is not None:  # only the loop's length of the source is read
        src = load_source(source, limits, frames=None if isinstance(source, NativeAudio) else
                          round(seconds * read_header(source).sample_rate) + 1)
    rate = sample_rate or (src.sample_rate if src is not None else engine.sample_rate)
    if not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        raise RegionError(f"sample rate must be between {SAMPLE_RATES[0]} and {SAMPLE_RATES[1]} Hz, got {rate}")
    frames = round(seconds * engine.sample_rate / cfg.hop_length)
    if frames < 8:
        raise RegionError(f"a loop must be at least {8 * cfg.hop_length / engine.sample_rate:.2f} s long")
    if frames > MAX_FRAMES:
        raise RegionError(f"a loop may be at most {MAX_FRAMES * cfg.hop_length / engine.sample_rate:.0f} s long")
    if src is not None and src.seconds < seconds:
        raise RegionError(f"the source is {src.seconds:.2f} s long, shorter than the {seconds:.2f} s loop")
    config = masked_config(engine, steps, sampler, "replace", 0, strength if src is not None else 1.0,
                           circular=True)
    iters = resolve_gl_iters(engine, gl_iters)
    seed, generator = engine.generator_for(seed)
    out_len = round(seconds * rate)
    period = frames * cfg.hop_length  # model-rate samples in one period
    tracker = Progress(callback, {"sampling": 2.0 * count_unet_calls(config), "phase": float(iters)})
    start = begun = time.perf_counter()

    if src is not None:
        audio_m = to_model(src.to_float(0, round(seconds * src.sample_rate)), src.sample_rate, engine)
        audio_m = torch.nn.functional.pad(audio_m, (0, max(0, period - audio_m.shape[-1])))[:, :period]
        # the mel of the source as one period: analyse it wrapped so the edges are its own continuation
        wrapped = torch.cat([audio_m[:, -cfg.n_fft:], audio_m, audio_m[:, :cfg.n_fft]], -1)
        x0 = engine.encode(wrapped)[..., cfg.n_fft // cfg.hop_length:][..., :frames]
    else:
        x0 = torch.zeros(engine.channels, cfg.n_mels, frames)
    x0 = x0.to(engine.tensor_device)  # sampled where the engine keeps its tensors (no copies per step on a GPU)
    # a tempo (the loop's bars) is what a beat-conditioned bundle follows; without one the loop runs free
    denoise, bpm = engine.denoiser_with_beat(tempo)
    x = masked_sample(denoise, x0[None], torch.zeros(1), bundle.diffusion, config, generator,
                      lambda f: tracker.update("sampling", 2.0 * count_unet_calls(config) * f), init=x0[None],
                      frame_multiple=bundle.frame_multiple)
    sampling_s = time.perf_counter() - start

    start = time.perf_counter()
    k = min(VOCODER_WRAP_FRAMES, frames)
    padded = torch.cat([x[..., -k:], x, x[..., :k]], -1)
    magnitude = vocode(padded, bundle, engine.vocoder, frames + 2 * k)[0][..., k:k + frames]  # [C, F, T]
    three = torch.cat([magnitude] * 3 + [magnitude[..., :1]], -1)  # 3 periods (+ the closing frame)
    audio3 = linked_griffin_lim(three.to(engine.dsp_device), cfg, n_iter=iters, init=engine.defaults.gl_init,
                                length=3 * period, generator=generator,
                                callback=lambda i: tracker.update("phase", float(i + 1))).cpu()
    fade = int(WRAP_FADE_SECONDS * engine.sample_rate)
    one = audio3[:, period:2 * period].clone()
    # the loop's start becomes what followed its end in the GL output, fading back to its own start
    one[:, :fade] = crossfade(audio3[:, 2 * period:2 * period + fade], audio3[:, period:period + fade])
    tracker.update("phase", float(iters))
    one_np = one.numpy().astype(np.float32)
    check_output(one_np)
    tiled = np.concatenate([one_np] * 3, -1)
    final = resample(tiled, period, out_len)  # period samples -> out_len samples: rate change + tiny stretch
    final = final[:, out_len:2 * out_len] if final.shape[-1] >= 2 * out_len else final[:, :out_len]
    cents = 1200 * math.log2((out_len / rate) / (period / engine.sample_rate))
    phase_s = time.perf_counter() - start

    context = min(out_len // 2, int(0.5 * rate))
    wrapped_audio, seam = loop_wrap_audio(final, context)
    boundary = seam_report(wrapped_audio, [seam], rate, reference=final)
    info = task_info(engine, "loop", seed, begun, {
        "seconds_requested": seconds, "seconds": out_len / rate, "samples": out_len, "sample_rate": rate,
        "frames": frames, "pitch_shift_cents": cents, "sampler": config.sampler, "steps": config.steps,
        "gl_iters": iters, "unet_calls": count_unet_calls(config), "sampling_s": sampling_s, "phase_s": phase_s,
        "peak": float(np.abs(final).max(initial=0.0)),
        "source": str(src.path) if src is not None and src.path else None,
        "strength": strength if src is not None else None, "boundary": boundary, "bpm": bpm})
    return RenderResult(audio=np.ascontiguousarray(final, dtype=np.float32), sample_rate=rate, info=info)


TASK = Task(
    "loop", "a seamless loop of N seconds or N bars", loop,
    params=(Param("length", "float", REQUIRED, "loop length: seconds, or BarsLength with a tempo"), *TEMPO,
            *SAMPLING, Param("sample_rate", "int", None, "output rate (default: the model's, or the source's)"),
            Param("source", "path", None, "make the loop from this audio (its start)"),
            Param("strength", "float", 0.7, "with a source: how far from it (0..1)"), *LIMITS),
    description="Generate a loop whose last sample flows into its first. With a source, the loop is made from "
                "that audio.",
    max_seconds=lambda engine: max_clip_seconds(engine.bundle))
