"""Render benchmark: the paper's settings vs our fast path, side by side on one bundle and machine.

    python -m bench.bench_render [--bundle DIR] [--rows paper-10,fast-10,paper-190,fast-190] [--steps 25]
                                 [--gl-iters 32] [--gl-init random] [--threads N] [--json OUT]

Without --bundle, a paper-size bundle (random-weight U-Net, 49.9 M params, and paper vocoder, 1.4 M, scalers
fitted on rendered music) is exported into a cache folder first (--bundle-cache, reused by later runs).
Rows: paper = DDIM 200 steps + torchaudio Griffin-Lim 200 (the paper's settings); fast = DPM-Solver++ (--steps)
+ our fast Griffin-Lim (--gl-iters, --gl-init). Each row runs in its own process so its peak RSS is its own.
Reports wall seconds, real-time factor (wall / audio seconds), paper/fast ratio, peak RSS and the spectral
convergence the phase reconstruction reached against the vocoder's magnitude.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "msanii-bench" / "paper-random"
ROWS = ("paper-10", "fast-10", "paper-190", "fast-190")
SECONDS = {"10": 10.0, "190": 190.0}


def make_paper_bundle(out: Path) -> Path:
    """Random-weight paper-size U-Net + vocoder, scalers fitted on real (rendered) music, exported to `out`."""
    import torch

    from bench.music import music_snippet
    from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel
    from export.bundle_writer import ExportOptions, write_bundle
    from training.models import UNet, Vocoder, unet_preset, vocoder_preset

    cfg = SpectrogramConfig()
    torch.manual_seed(0)
    mel = log_mel(torch.from_numpy(music_snippet(10.0, cfg.sample_rate)), cfg)
    ckpts = {}
    for kind in ("unet", "vocoder"):
        model_cfg = unet_preset("paper") if kind == "unet" else vocoder_preset("paper")
        model = UNet(model_cfg) if kind == "unet" else Vocoder(model_cfg)
        scaler = LearnedScaler().train()
        scaler(mel)
        ckpts[kind] = {
            "format": "msanii-daw-checkpoint", "version": 1, "kind": kind, "step": 0, "preset": "paper",
            "model_config": model_cfg.to_dict(), "spectrogram": cfg.to_dict(),
            "diffusion": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                          "prediction_type": "epsilon"} if kind == "unet" else None,
            "model": model.state_dict(), "ema": None, "scaler": scaler.state_dict(),
            "scaler_stats": scaler.stats().to_dict(), "optimizer": {}, "lr_scheduler": {}, "rng": {},
            "train_config": {}, "data": {"root": "", "files": 0, "seconds": 0.0,
                                         "description": "random weights (benchmark only)"}}
    return write_bundle(ckpts["unet"], ckpts["vocoder"], out,
                        ExportOptions(name="paper-random-bench", command="python -m bench.bench_render"),
                        log=lambda m: print(f"  export: {m}", file=sys.stderr))


def run_row(row: str, bundle: Path, steps: int, gl_iters: int, gl_init: str, threads: int | None) -> dict:
    """Render one row in this process; returns its measurements."""
    from engine.api import Engine

    kind, secs = row.split("-")
    engine = Engine.load(bundle, device="cpu", threads=threads)
    importlib.import_module("engine.tasks.generate")  # warm process: imports are not part of a render's time
    if kind == "paper":
        settings = {"sampler": "ddim", "steps": 200, "gl_iters": 200, "phase": "torchaudio", "gl_init": "random"}
    else:
        settings = {"sampler": "dpmpp", "steps": steps, "gl_iters": gl_iters, "phase": "fast", "gl_init": gl_init}
    start = time.perf_counter()
    result = engine.generate(SECONDS[secs], seed=0, **settings)
    wall = time.perf_counter() - start
    audio_s = result.audio.shape[-1] / result.sample_rate
    return {"row": row, **settings, "audio_s": audio_s, "wall_s": wall, "rtf": wall / audio_s,
            "sampling_s": result.info["sampling_s"], "decode_s": result.info["decode_s"],
            "spectral_convergence": result.info["spectral_convergence"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": engine.threads, "device": engine.device}


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Paper settings vs fast path render benchmark.")
    p.add_argument("--bundle", type=Path, help="bundle to benchmark (default: a cached paper-size random bundle)")
    p.add_argument("--bundle-cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list from {','.join(ROWS)}")
    p.add_argument("--steps", type=int, default=25, help="fast path DPM-Solver++ steps")
    p.add_argument("--gl-iters", type=int, default=None, help="fast path Griffin-Lim iterations (bundle default)")
    p.add_argument("--gl-init", default=None, help="fast path initial phase (bundle default)")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", type=Path, help="append results (one JSON object per row) to this file")
    p.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in a child process
    args = p.parse_args(argv)

    bundle = args.bundle
    if bundle is None:
        bundle = args.bundle_cache
        if not (bundle / "manifest.json").is_file():
            print(f"creating paper-size random-weight bundle in {bundle} ...", file=sys.stderr)
            make_paper_bundle(bundle)
    from engine.bundle import load_bundle
    defaults = load_bundle(bundle).defaults
    gl_iters = args.gl_iters if args.gl_iters is not None else defaults.gl_iters
    gl_init = args.gl_init or defaults.gl_init
    if args.row:
        print(json.dumps(run_row(args.row, bundle, args.steps, gl_iters, gl_init, args.threads)))
        return 0

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"bench_render: error: unknown rows {unknown}: use {','.join(ROWS)}", file=sys.stderr)
        return 2
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"bundle: {bundle} ({load_bundle(bundle).manifest['unet'].get('parameters', '?')} U-Net params)")
    results = {}
    for row in rows:
        cmd = [sys.executable, "-m", "bench.bench_render", "--bundle", str(bundle), "--row", row,
               "--steps", str(args.steps), "--gl-iters", str(gl_iters), "--gl-init", gl_init]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"row {row} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["load_avg"] = os.getloadavg()[0]
        results[row] = r
        print(f"{row:10s} {r['sampler']:5s} {r['steps']:3d} steps + {r['phase']:10s} GL {r['gl_iters']:3d} "
              f"({r['gl_init']}): {r['wall_s']:8.1f} s for {r['audio_s']:.2f} s audio, RTF {r['rtf']:.3f} "
              f"(sampling {r['sampling_s']:.1f} s, decode {r['decode_s']:.1f} s), peak RSS {r['peak_rss_mb']:.0f} MB,"
              f" SC {r['spectral_convergence']:.4f}, load {r['load_avg']:.1f}", flush=True)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps({**r, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}) + "\n")
    for secs in ("10", "190"):
        paper, fast = results.get(f"paper-{secs}"), results.get(f"fast-{secs}")
        if paper and fast:
            print(f"{secs:>3s} s: fast path is {paper['wall_s'] / fast['wall_s']:.1f}x faster than the paper settings "
                  f"(RTF {paper['rtf']:.3f} -> {fast['rtf']:.3f}); SC {paper['spectral_convergence']:.4f} vs "
                  f"{fast['spectral_convergence']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
