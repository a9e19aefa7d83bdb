"""onnxruntime settings for the U-Net graph: time per call (and per clip when batched) by graph optimisation
level, intra-op threads, thread spinning, IO binding and batch size, against the engine's own session settings.

    python -m bench.ort_tuning [--bundle models/default | --paper-random] [--seconds 10] [--repeats 5]

Each variant opens its own session on the same graph and input; timings are the median of `--repeats` calls after
one warm-up call, measured interleaved (round-robin over variants) so load changes hit every variant alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def session(path: Path, level: str, threads: int, spinning: bool, arena: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def call(sess, x: np.ndarray, t: np.ndarray, binding: bool) -> None:
    if not binding:
        sess.run(None, {"x": x, "t": t})
        return
    io = sess.io_binding()
    io.bind_cpu_input("x", x)
    io.bind_cpu_input("t", t)
    io.bind_output(sess.get_outputs()[0].name, "cpu")
    sess.run_with_iobinding(io)
    io.copy_outputs_to_cpu()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="onnxruntime session settings for the U-Net, per-call timings.")
    p.add_argument("--bundle", type=Path, default=Path("models/default"))
    p.add_argument("--paper-random", action="store_true", help="the paper-size random bundle of bench.bench_render")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    from bench.bench_render import machine, paper_bundle
    from engine.backends.onnx import default_threads
    from engine.bundle import load_bundle
    from engine.render import clip_length

    bundle_dir = paper_bundle() if args.paper_random else args.bundle
    bundle = load_bundle(bundle_dir)
    length = clip_length(args.seconds, bundle)
    cores = default_threads()
    rng = np.random.default_rng(0)
    shape = (bundle.channels, bundle.spectrogram.n_mels, length.model_frames)
    graph = bundle.files["unet.onnx"]

    # name -> (level, threads, spinning, binding, batch, arena)
    variants = {
        "engine (all, %d threads, no spin, no arena)" % cores: ("all", cores, False, False, 1, False),
        "graph opt: disable": ("disable", cores, False, False, 1, False),
        "graph opt: basic": ("basic", cores, False, False, 1, False),
        "graph opt: extended": ("extended", cores, False, False, 1, False),
        "1 thread": ("all", 1, False, False, 1, False),
        "spinning on": ("all", cores, True, False, 1, False),
        "CPU arena on": ("all", cores, False, False, 1, True),
        "IO binding": ("all", cores, False, True, 1, False),
        "batch 2 (two clips per call)": ("all", cores, False, False, 2, False),
        "batch 4 (four clips per call)": ("all", cores, False, False, 4, False),
    }
    sessions = {name: session(graph, v[0], v[1], v[2], v[5]) for name, v in variants.items()}
    inputs = {b: (rng.standard_normal((b, *shape), dtype=np.float32), np.full((b,), 500.0, np.float32))
              for b in (1, 2, 4)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, (_, _, _, binding, batch, _) in variants.items():
        call(sessions[name], *inputs[batch], binding)  # warm-up
    for _ in range(args.repeats):
        for name, (_, _, _, binding, batch, _) in variants.items():
            start = time.perf_counter()
            call(sessions[name], *inputs[batch], binding)
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times[next(iter(variants))])
    print(f"machine: {machine()}; bundle {bundle.name} ({bundle_dir}); U-Net input {list(shape)} "
          f"({args.seconds:g} s); median of {args.repeats}")
    print("\n| variant | ms per call | ms per clip | per-clip ratio vs engine |\n|---|---|---|---|")
    for name, (_, _, _, _, batch, _) in variants.items():
        med = statistics.median(times[name])
        print(f"| {name} | {med * 1000:.0f} | {med * 1000 / batch:.0f} | {base / (med / batch):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
