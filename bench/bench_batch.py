"""Batching queued generate jobs: N clips of one length rendered one by one vs sampled B at a time.

    python -m bench.bench_batch [--bundle models/default] [--seconds 10] [--clips 4] [--batches 1,2,4]
                                [--device cpu --backend onnx]

Each batch size runs in its own process (its own peak RSS) after a warm-up render. Per row: total seconds for the
N clips, throughput against batch 1 from the same run, when the first clip is ready (a batch finishes sampling for
all its clips before decoding the first), peak RSS (and peak GPU memory on CUDA), and the mean and largest log-mel
difference (nats) between a batched clip and the same seed rendered alone (0 = the same clip; the largest is
one bin's, so it shows rounding anywhere, e.g. a backend whose batched kernels round differently).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.backends import BACKENDS, PRECISIONS
from engine.tasks.generate import generate_batch


def run_batch_size(bundle: Path, seconds: float, clips: int, batch: int, options: dict, audio_out: Path) -> dict:
    import numpy as np
    import torch

    from engine.api import Engine

    engine = Engine.load(bundle, **options)
    generate_batch(engine, 1.0, [1] * batch, steps=2, gl_iters=2)  # warm: sessions, thread pools, FFT plans
    gpu = engine.tensor_device.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    first_ready, audio = None, []
    start = time.perf_counter()
    for first in range(0, clips, batch):
        seeds = list(range(first, min(clips, first + batch)))
        for result in generate_batch(engine, seconds, seeds):
            if first_ready is None:  # the first batch's sampling, then its first clip's decoding
                first_ready = result.info["sampling_s"] + result.info["decode_s"]
            audio.append(result.audio)
    wall = time.perf_counter() - start
    np.save(audio_out, np.stack(audio))
    return {"batch": batch, "clips": clips, "seconds": seconds, "wall_s": wall, "first_clip_s": first_ready,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
            "device": engine.device, "backend": engine.backend}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Throughput of batched generation vs one clip at a time.")
    p.add_argument("--bundle", type=Path, default=Path("models/default"))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--batches", default="1,2,4")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="onnx", choices=BACKENDS)
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one batch size in this process
    p.add_argument("--audio-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    options = {"device": args.device, "backend": args.backend, "precision": args.precision}
    if args.one:
        print(json.dumps(run_batch_size(args.bundle, args.seconds, args.clips, args.one, options, args.audio_out)))
        return 0

    import numpy as np
    import torch

    from bench.bench_render import machine
    from engine.bundle import load_bundle
    from engine.dsp import log_mel

    cfg = load_bundle(args.bundle).spectrogram
    sizes = [int(b) for b in args.batches.split(",")]
    if sizes[0] != 1:
        sizes.insert(0, 1)  # the baseline every ratio divides
    print(f"machine: {machine()}\n{args.clips} clips of {args.seconds:g} s, bundle {args.bundle}, "
          f"device {args.device}, backend {args.backend}")
    print("| batch | wall | clips/min | vs batch 1 | first clip ready | peak RSS "
          "| log-mel diff to batch 1 (mean / max) |")
    print("|---|---|---|---|---|---|---|")
    base, reference = None, None
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            out = Path(tmp) / f"b{size}.npy"
            cmd = [sys.executable, "-m", "bench.bench_batch", "--bundle", str(args.bundle), "--seconds",
                   str(args.seconds), "--clips", str(args.clips), "--one", str(size), "--audio-out", str(out),
                   "--device", args.device, "--backend", args.backend]
            cmd += ["--precision", args.precision] if args.precision else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"batch {size} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            audio = torch.from_numpy(np.load(out))
            base = base or row["wall_s"]
            reference = log_mel(audio, cfg) if reference is None else reference
            gap = (log_mel(audio, cfg) - reference).abs()
            diff = f"{float(gap.mean()):.4f} / {float(gap.max()):.4f}"
            gpu = f" (GPU {row['peak_gpu_mb']:.0f} MB)" if row["peak_gpu_mb"] is not None else ""
            print(f"| {size} | {row['wall_s']:.1f} s | {60 * args.clips / row['wall_s']:.1f} | "
                  f"{base / row['wall_s']:.2f}x | {row['first_clip_s']:.1f} s | {row['peak_rss_mb']:.0f} MB{gpu} | "
                  f"{diff} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
