"""Serving throughput: clips per minute through the OSC bridge with the engine in the server process or in
N supervised worker processes, on one bundle and machine (real UDP client, real files written).

    python -m bench.bench_workers --bundle DIR [--configs 0,1,2] [--clips 6] [--seconds 5] [--steps 25]
                                  [--gl-iters 80] [--devices cpu] [--threads-total N | --threads N] [--json OUT]

Config 0 = in-process engine (threads = --threads-total); N >= 1 = N workers sharing --threads-total cores
(threads per worker = max(1, total // N)); --threads N gives every engine N threads instead. All clips are submitted at once; the clock runs from the first
request to the last `/msanii/done` (worker start-up is excluded and reported separately).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_config(bundle: Path, workers: int, clips: int, seconds: float, steps: int, gl_iters: int,
               devices: list[str], threads_total: int, threads: int | None = None) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from osc_helpers import OscClient

    from bridge.paths import PathPolicy
    from bridge.server import OscBridge
    from bridge.settings import RenderSettings
    from engine.serving.workers import plan_workers

    settings = RenderSettings(steps=steps, gl_iters=gl_iters)
    per_engine = threads or (threads_total if workers == 0 else max(1, threads_total // workers))
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        if workers == 0:
            from engine.api import Engine
            engine = Engine.load(bundle, device=devices[0], threads=per_engine)
            bridge = OscBridge(engine, PathPolicy(Path(out)), port=0, reply_port=None, max_pending=clips,
                               settings=settings)
        else:
            specs = plan_workers(bundle, workers, devices, per_engine)
            bridge = OscBridge(None, PathPolicy(Path(out)), port=0, reply_port=None, max_pending=clips,
                               settings=settings, workers=specs)
        startup = time.monotonic() - started
        bridge.start()
        client = OscClient(bridge.address)
        try:
            t0 = client.send("/msanii/generate", "warm-up", 1.0, 0)  # first-call costs out of the timing
            client.wait_for("/msanii/done", lambda m: m.args[0] == "warm-up", timeout=600)
            if workers > 1:  # every worker's first render
                for i in range(1, workers):
                    client.send("/msanii/generate", f"warm-up-{i}", 1.0, i)
                for i in range(1, workers):
                    client.wait_for("/msanii/done", lambda m, i=i: m.args[0] == f"warm-up-{i}", timeout=600)
            t0 = time.monotonic()
            for i in range(clips):
                client.send("/msanii/generate", f"clip-{i}", seconds, 100 + i)
            done = [client.wait_for("/msanii/done", lambda m, i=i: m.args[0] == f"clip-{i}", timeout=3600)
                    for i in range(clips)]
            wall = max(m.at for m in done) - t0
        finally:
            client.close()
            bridge.close()
    return {"workers": workers, "threads_per_engine": per_engine, "clips": clips, "clip_seconds": seconds, "steps": steps,
            "gl_iters": gl_iters, "wall_s": round(wall, 2), "clips_per_minute": round(60 * clips / wall, 2),
            "startup_s": round(startup, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--configs", default="0,1,2", help="comma-separated worker counts (0 = in-process)")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--gl-iters", type=int, default=80)
    ap.add_argument("--devices", default="cpu")
    ap.add_argument("--threads-total", type=int, default=None, help="CPU threads shared out (default: all cores)")
    ap.add_argument("--threads", type=int, default=None, help="threads of every engine (overrides the split)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from engine.backends.onnx import default_threads
    total = args.threads_total or default_threads()
    devices = [d for d in args.devices.split(",") if d]
    rows = []
    for n in (int(c) for c in args.configs.split(",")):
        row = run_config(args.bundle, n, args.clips, args.seconds, args.steps, args.gl_iters, devices, total, args.threads)
        rows.append(row)
        print(f"workers={n} ({'in-process' if n == 0 else 'processes'}), {row['threads_per_engine']} thread(s) "
              f"each: {row['clips']} x {args.seconds:g} s clips in {row['wall_s']:.1f} s = "
              f"{row['clips_per_minute']:.1f} clips/min (start-up {row['startup_s']:.1f} s)", flush=True)
    report = {"machine": platform.platform(), "cores": total, "devices": devices, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
