"""Shared machinery of the region tasks: render new material for spans of the user's audio and splice it in.

Flow for one context window of the input (input rate, native samples untouched):
  original window (float) -> model rate/channels (soxr) -> mel (model space) -> masked sampling with the frames
  outside the edited spans known -> vocoder magnitude (known frames keep the original's exact STFT magnitude)
  -> anchored Griffin-Lim (original phase as the start, original samples held fixed) -> back to the input rate
  -> for each region: equal-power crossfades *inside* the region -> quantised to the file's bit depth -> spliced
  into a copy of the file's native samples. Everything outside the regions is the file's own samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from engine.audio_io import NativeAudio, float_to_samples, output_layout, read_native, resample, samples_to_float
from engine.boundary import seam_report
from engine.dsp.anchored_phase import anchored_griffin_lim, context_phase
from engine.dsp.crossfade import blend_into_region
from engine.dsp.phase import fast_griffin_lim
from engine.dsp.spectrogram import mel_frames_for, stft_complex
from engine.finite import check_input
from engine.limits import UNBOUNDED, Limits
from engine.masked_sampling import MaskedConfig, count_unet_calls, masked_sample
from engine.regions import RegionError, SampleRegion
from engine.render import MAX_FRAMES, Progress, RenderError, vocode

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.regions import Tempo

FADE_SECONDS = 0.010  # crossfade inside each region edge: long enough to hide any step, short enough to keep timing
CONTEXT_SECONDS = 12.0  # original audio each side of a region the model sees (the paper's clips are ~11 s)


# ---- the input ----------------------------------------------------------------------------------------------

def load_source(source: str | Path | NativeAudio, limits: Limits | None = None, frames: int | None = None
                ) -> NativeAudio:
    """The task's input: a file read (its header checked against `limits` first; only the first `frames` if
    given), or audio already in memory, held to the same limits and non-finite policy."""
    if not isinstance(source, NativeAudio):
        return read_native(source, limits, frames=frames)
    (limits or UNBOUNDED).check_input(source.seconds, source.path or "the input")
    check_input(source.samples, source.sample_rate, source.path or "the input")
    return source



# ---- channels and rates ----------------------------------------------------------------------------------------

def to_model(audio: np.ndarray, rate: int, engine: "Engine") -> torch.Tensor:
    """Float [C, n] at `rate` -> torch [model channels, n'] at the model rate (mono is duplicated for a stereo
    model; stereo is averaged for a mono one)."""
    if audio.shape[0] != engine.channels:
        audio = np.repeat(audio, engine.channels, 0) if audio.shape[0] == 1 else audio.mean(0, keepdims=True)
    if rate != engine.sample_rate:
        audio = resample(audio, rate, engine.sample_rate)
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


def from_model(audio: torch.Tensor, engine: "Engine", rate: int, channels: int, length: int) -> np.ndarray:
    """Model-rate audio [model channels, n] -> float [channels, length] at `rate` (time-aligned by soxr)."""
    out = audio.numpy().astype(np.float32)
    if rate != engine.sample_rate:
        out = resample(out, engine.sample_rate, rate, length)
    out = out[:, :length]
    if out.shape[-1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
    if out.shape[0] != channels:
        out = out.mean(0, keepdims=True) if channels == 1 else np.repeat(out, channels, 0)
    return out


# ---- rendering spans at the model rate ---------------------------------------------------------------------------

def known_frames(frames: int, samples: int, spans: Sequence[tuple[int, int]], engine: "Engine") -> torch.Tensor:
    """Bool [frames]: True where a frame's analysis window touches none of the spans and the frame is real (not
    padding up to the U-Net's multiple)."""
    cfg = engine.bundle.spectrogram
    centres = torch.arange(frames) * cfg.hop_length
    lo, hi = centres - cfg.n_fft // 2, centres + cfg.n_fft // 2
    keep = centres <= samples
    for s, e in spans:
        keep &= ~((lo < e) & (hi > s))
    return keep


@dataclass
class SpanRender:
    """What `render_spans` did, for the task's info."""
    unet_calls: int = 0
    sampling_s: float = 0.0
    phase_s: float = 0.0
    frames: int = 0
    known_frames: int = 0
    extra: dict = field(default_factory=dict)


def render_spans(engine: "Engine", audio: torch.Tensor, spans: Sequence[tuple[int, int]], config: MaskedConfig,
                 generator: torch.Generator, gl_iters: int, on_call: Callable[[float], None] | None = None,
                 on_phase: Callable[[int], None] | None = None, phase_init: str = "context",
                 report: SpanRender | None = None, tempo: "Tempo | None" = None, offset_s: float = 0.0
                 ) -> torch.Tensor:
    """New audio [C, n] for model-rate `audio` [C, n] where the sample spans [(s, e), ...] are regenerated; samples
    outside the spans are returned unchanged. phase_init "context": original phase in known frames, propagated into
    the spans; "original": the original's phase everywhere (audio-to-audio, where the content is related); both
    hold the original samples fixed (anchored Griffin-Lim). "free": the paper's decoding as a baseline - vocoder
    magnitude everywhere, random initial phase, nothing held - for measuring what anchoring buys.
    `tempo`: the file's tempo, which a beat-conditioned bundle follows (None: no beat grid); `offset_s`: where
    `audio` starts in the file, in seconds."""
    bundle = engine.bundle
    cfg = bundle.spectrogram
    length = audio.shape[-1]
    tail = 0
    if any(e > length - cfg.n_fft for _, e in spans):
        # a span at the very end: render past it and drop the extra, as the last samples of an inverse STFT are
        # covered by a single, fading window and come out unreliable
        tail = cfg.n_fft + cfg.hop_length
        audio = torch.nn.functional.pad(audio, (0, tail))
        spans = [(s, e + tail if e > length - cfg.n_fft else e) for s, e in spans]
    n = audio.shape[-1]
    frames = mel_frames_for(n, cfg)  # what engine.encode gives for the n samples
    padded = -(-frames // bundle.frame_multiple) * bundle.frame_multiple
    if padded > MAX_FRAMES:
        raise RenderError(f"a context window of {n / engine.sample_rate:.1f} s is longer than one render allows")
    x0 = engine.encode(audio)  # [C, M, frames]
    x0 = torch.nn.functional.pad(x0, (0, padded - frames))
    keep = known_frames(padded, n, spans, engine)
    mask = keep.to(x0.dtype)[None, None, None, :]
    start = time.perf_counter()
    counter = {"calls": 0}

    beat_denoise, _ = engine.denoiser_with_beat(tempo, offset_s)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        counter["calls"] += 1
        return beat_denoise(x, t)

    # sampled where the engine keeps its tensors (the GPU for the torch backend: no copies per step)
    x0_model = x0[None].to(engine.tensor_device)
    x = masked_sample(denoise, x0_model, mask, bundle.diffusion, config, generator, on_call, init=x0_model)
    sampling_s = time.perf_counter() - start

    start = time.perf_counter()
    magnitude = vocode(x, bundle, engine.vocoder, frames)[0].to(engine.dsp_device)  # phase on the GPU if there
    # Phase only needs the spans plus a margin of original to hold on to, not the model's whole context: crop
    # on the hop grid (frames stay aligned) to at least half a second / two FFT sizes around the spans.
    hop = cfg.hop_length
    margin = max(2 * cfg.n_fft, int(0.5 * engine.sample_rate))
    c0 = max(0, (min(s for s, _ in spans) - margin) // hop * hop)
    c1 = min(n, max(e for _, e in spans) + margin)
    part = audio[:, c0:c1].to(engine.dsp_device)
    part_frames = mel_frames_for(c1 - c0, cfg)
    magnitude = magnitude[..., c0 // hop:c0 // hop + part_frames]
    keep_part = keep[c0 // hop:c0 // hop + part_frames].to(engine.dsp_device)
    known_samples = torch.ones(c1 - c0, dtype=torch.bool, device=engine.dsp_device)
    for s, e in spans:
        known_samples[max(0, s - c0):min(c1 - c0, e - c0)] = False
    if phase_init == "free":  # baseline: the paper's decoding (random phase, nothing held), spliced as it is
        free = fast_griffin_lim(magnitude, cfg, n_iter=gl_iters, init="random", length=c1 - c0,
                                generator=generator, callback=on_phase)
        new = torch.where(known_samples, part, free)
    else:
        original_stft = stft_complex(part, cfg)
        magnitude = torch.where(keep_part, original_stft.abs(), magnitude)
        if phase_init == "original":
            init = original_stft
        elif phase_init == "context":
            init = context_phase(original_stft, keep_part, cfg)
        else:
            raise RenderError(f"unknown phase init {phase_init!r}: use context, original or free")
        new = anchored_griffin_lim(magnitude, cfg, part, known_samples, init, gl_iters, callback=on_phase)
    out = audio.clone()
    out[:, c0:c1] = new.to(out.device)
    keep_real = keep[:frames]
    out = out[:, :length]
    if report is not None:
        report.unet_calls += counter["calls"]
        report.sampling_s += sampling_s
        report.phase_s += time.perf_counter() - start
        report.frames += frames
        report.known_frames += int(keep_real.sum())
    return out


# ---- regions of a file -------------------------------------------------------------------------------------------

def context_windows(regions: Sequence[SampleRegion], total: int, rate: int, context_s: float,
                    max_s: float) -> list[tuple[int, int, list[SampleRegion]]]:
    """Group regions into windows [a, b) = region +- context (clipped to the file); overlapping windows merge.
    A window longer than `max_s` is split between regions; one region too long on its own is an error."""
    max_len = int(max_s * rate)
    context = int(context_s * rate)
    windows: list[tuple[int, int, list[SampleRegion]]] = []
    for region in regions:
        if region.length > max_len - 2 * int(0.5 * rate):
            raise RegionError(f"region {region.start / rate:.2f}s-{region.end / rate:.2f}s is longer than the "
                              f"{max_s - 1:.0f} s one render can fill; split it into shorter regions")
        pad = min(context, (max_len - region.length) // 2)
        a, b = max(0, region.start - pad), min(total, region.end + pad)
        if windows and a < windows[-1][1] and max(b, windows[-1][1]) - windows[-1][0] <= max_len:
            pa, pb, regs = windows[-1]
            windows[-1] = (pa, max(pb, b), regs + [region])
        else:
            windows.append((a, b, [region]))
    return windows


def edit_regions(engine: "Engine", source: NativeAudio, regions: Sequence[SampleRegion], config: MaskedConfig,
                 generator: torch.Generator, gl_iters: int, callback: Callable[[float], None] | None,
                 fade_s: float = FADE_SECONDS, context_s: float = CONTEXT_SECONDS, phase_init: str = "context",
                 output_format: str | None = None, output_subtype: str | None = None,
                 tempo: "Tempo | None" = None) -> tuple[np.ndarray, dict]:
    """Native samples of `source` with every region regenerated, plus info (calls, timings, boundary measure).
    `tempo`: the source's, for a beat-conditioned bundle to follow (render_spans)."""
    fmt, subtype = output_layout(source, output_format, output_subtype)
    rate = source.sample_rate
    windows = context_windows(regions, source.frames, rate, context_s, engine.max_seconds)
    calls_each = count_unet_calls(config)
    tracker = Progress(callback, {"sampling": 2.0 * calls_each * len(windows), "phase": 1.0 * gl_iters * len(windows)})
    if subtype == source.subtype:
        out = source.samples.copy()
    else:  # another bit depth was asked for: the untouched audio is converted once (documented, not bit-identical)
        out = float_to_samples(source.to_float().T, subtype, dither=True)
    report = SpanRender()
    fade = int(round(fade_s * rate))
    for w, (a, b, regs) in enumerate(windows):
        original = source.to_float(a, b)
        audio_m = to_model(original, rate, engine)
        scale = engine.sample_rate / rate
        spans = [(int(np.floor((r.start - a) * scale)), int(np.ceil((r.end - a) * scale))) for r in regs]
        new_m = render_spans(
            engine, audio_m, spans, config, generator, gl_iters,
            on_call=lambda f, w=w: tracker.update("sampling", 2.0 * calls_each * (w + f)),
            on_phase=lambda i, w=w: tracker.update("phase", float(gl_iters * w + i + 1)),
            phase_init=phase_init, report=report, tempo=tempo, offset_s=a / rate)
        new = from_model(new_m, engine, rate, source.channels, b - a)
        for r in regs:
            seg = slice(r.start - a, r.end - a)
            blended = blend_into_region(original[:, seg], new[:, seg], fade, fade_start=r.start > 0,
                                        fade_end=r.end < source.frames)
            out[r.start:r.end] = float_to_samples(blended.T, subtype, dither=True)
    tracker.update("phase", float(gl_iters * len(windows)))
    seams = sorted({p for r in regions for p in (r.start, r.end) if 0 < p < source.frames})
    info = {"regions_s": [[r.start / rate, r.end / rate] for r in regions], "windows": len(windows),
            "unet_calls": report.unet_calls, "sampling_s": report.sampling_s, "phase_s": report.phase_s,
            "frames": report.frames, "known_frames": report.known_frames, "fade_ms": fade_s * 1000,
            "format": fmt, "subtype": subtype, "sample_rate": rate, "bit_identical_outside": subtype == source.subtype}
    if seams and source.frames > 3 * int(0.05 * rate):
        edited = samples_to_float(out).T
        new_material = np.concatenate([edited[:, r.start:r.end] for r in regions], axis=-1)
        info["boundary"] = seam_report(edited, seams, rate, reference=[source.to_float(), new_material])
    return out, info
