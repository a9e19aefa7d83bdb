"""Where a render's time goes: one request (generate + write the file, optionally resampled) under pyinstrument,
summed into pipeline stages, plus the hottest functions by self time.

    python -m bench.profile_render [--bundle models/default | --paper-random] [--seconds 10,190]
                                   [--steps 25] [--sampler dpmpp] [--gl-iters 80] [--rate 48000] [--top 8]

Stages are exclusive (a nested stage's time is taken out of its parent): U-Net calls, the sampler's own
arithmetic, vocoder, initial phase, Griffin-Lim iterations, the spectral-convergence check the engine reports,
resampling and file writing; "other" is the rest (tensor glue, noise, imports already warm).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from engine.tasks.generate import generate

# (class name or None, function name) -> stage. Matched on pyinstrument frames.
STAGES = {
    ("OnnxDenoiser", "__call__"): "U-Net (onnxruntime)",
    (None, "sample"): "sampler arithmetic (diffusers step, x0 clip)",
    ("OnnxVocoder", "__call__"): "vocoder (onnxruntime)",
    (None, "_initial_angles"): "initial phase (peak-locked)",
    (None, "_fgla"): "Griffin-Lim iterations (ours)",
    (None, "griffinlim"): "Griffin-Lim iterations (torchaudio)",
    (None, "spectral_convergence"): "spectral-convergence check",
    (None, "resample"): "resample (soxr)",
    (None, "write_audio"): "write file",
}


def stage_of(frame) -> str | None:
    return STAGES.get((frame.class_name, frame.function)) or STAGES.get((None, frame.function))


def stage_times(root) -> dict[str, float]:
    """Exclusive seconds per stage from a pyinstrument frame tree; every stage is listed (0.0 when no sample
    landed in it, e.g. a millisecond write on a loaded machine)."""
    totals: dict[str, float] = defaultdict(float, {name: 0.0 for name in STAGES.values()})

    def walk(frame, current: str | None) -> None:
        stage = stage_of(frame)
        if stage is not None and stage != current:
            totals[stage] += frame.time
            if current is not None:
                totals[current] -= frame.time
            current = stage
        for child in frame.children:
            walk(child, current)

    walk(root, None)
    return dict(totals)


def hottest(root, top: int) -> list[tuple[str, float]]:
    """Functions by summed self time (library internals included)."""
    selfs: dict[str, float] = defaultdict(float)

    def walk(frame) -> None:
        if frame.children:
            for child in frame.children:
                walk(child)
        else:  # [self] leaves carry the time spent in their parent function itself
            owner = frame.parent if frame.function == "[self]" and frame.parent is not None else frame
            if owner.function.startswith("pybind11") and owner.function.endswith(".run"):
                selfs["onnxruntime InferenceSession.run (graph kernels)"] += frame.time
                return
            name = f"{owner.class_name + '.' if owner.class_name else ''}{owner.function} ({owner.file_path_short}:{owner.line_no})"
            selfs[name] += frame.time

    walk(root)
    return sorted(selfs.items(), key=lambda kv: -kv[1])[:top]


def profile_one(engine, seconds: float, settings: dict, rate: int | None, out_dir: Path, top: int) -> dict:
    from pyinstrument import Profiler

    from engine.audio_io import resample, write_audio

    profiler = Profiler(interval=0.002)
    start = time.perf_counter()
    profiler.start()
    result = generate(engine, seconds, seed=0, **settings)
    audio, file_rate = result.audio, result.sample_rate
    if rate and rate != file_rate:  # what msanii-render --rate does
        audio, file_rate = resample(audio, file_rate, rate), rate
    write_audio(out_dir / f"profile-{seconds:g}s.wav", audio, file_rate)
    profiler.stop()
    wall = time.perf_counter() - start
    root = profiler.last_session.root_frame()
    stages = stage_times(root)
    stages["other"] = max(0.0, wall - sum(stages.values()))
    return {"seconds": seconds, "wall": wall, "stages": stages, "hot": hottest(root, top),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Profile one render per length and sum it into pipeline stages.")
    p.add_argument("--bundle", type=Path, default=Path("models/default"))
    p.add_argument("--paper-random", action="store_true", help="use the paper-size random-weight bundle of "
                   "bench.bench_render (made in its cache folder on first use)")
    p.add_argument("--seconds", default="10,190", help="comma list of clip lengths")
    p.add_argument("--steps", type=int)
    p.add_argument("--sampler")
    p.add_argument("--gl-iters", type=int)
    p.add_argument("--phase", default="fast", choices=("fast", "torchaudio"))
    p.add_argument("--gl-init")
    p.add_argument("--rate", type=int, default=48_000, help="file sample rate (resampled with soxr; 0: native)")
    p.add_argument("--threads", type=int)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)

    import importlib

    from bench.bench_render import machine, paper_bundle
    from engine.api import Engine

    bundle = paper_bundle() if args.paper_random else args.bundle
    engine = Engine.load(bundle, device="cpu", threads=args.threads)
    importlib.import_module("engine.tasks.generate")
    settings = {k: v for k, v in {"steps": args.steps, "sampler": args.sampler, "gl_iters": args.gl_iters,
                                  "phase": args.phase, "gl_init": args.gl_init}.items() if v is not None}
    print(f"machine: {machine()}; bundle {engine.name} ({bundle}); settings {settings or 'bundle defaults'}; "
          f"file rate {args.rate or 'native'}")
    with tempfile.TemporaryDirectory() as tmp:
        generate(engine, 1.0, seed=0, steps=2, gl_iters=2)  # warm sessions and caches
        for seconds in (float(s) for s in args.seconds.split(",")):
            r = profile_one(engine, seconds, settings, args.rate or None, Path(tmp), args.top)
            print(f"\n### {seconds:g} s: {r['wall']:.2f} s wall (RTF {r['wall'] / seconds:.3f}), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB\n\n| stage | seconds | share |\n|---|---|---|")
            for stage, secs in sorted(r["stages"].items(), key=lambda kv: -kv[1]):
                if not secs:  # a stage this render does not run (e.g. torchaudio's Griffin-Lim)
                    continue
                print(f"| {stage} | {secs:.2f} | {100 * secs / r['wall']:.1f} % |")
            print("\nhottest functions (self time):")
            for name, secs in r["hot"]:
                print(f"  {secs:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
