"""Render benchmark: the paper's settings vs our fast path, side by side on one bundle and machine.

    python -m bench.bench_render [--bundle DIR] [--rows paper-10,paperours-10,fast-10,fast-30,fast-90,fast-190]
                                 [--steps N] [--gl-iters N] [--gl-init peaks] [--threads N] [--repeat N] [--json OUT]
                                 [--device cuda --backend torch --precision fp16 --cuda-graphs]

Without --bundle, a paper-size bundle (random-weight U-Net, 49.9 M params, and paper vocoder, 1.4 M, scalers
fitted on rendered music) is exported into a cache folder first (--bundle-cache, reused by later runs), with its
torch programs (the torch backend's, for GPUs).
Rows are KIND-SECONDS (any length up to 190):
- paper: DDIM 200 steps + torchaudio Griffin-Lim 200 from a random phase (the paper's settings; the baseline),
- paperours: the paper's settings run by our code (DDIM 200 + our Griffin-Lim 200 from a random phase),
- fast: the engine's fast path (DPM-Solver++ --steps + our Griffin-Lim --gl-iters from --gl-init; bundle defaults).
Each row runs in its own process so its peak RSS is its own, after a 1 s warm-up render (a warm engine, as in the
OSC server; a cold `msanii-render` process adds ~4 s, mostly importing torch and diffusers: RESULTS.md, "Request to
audio"). Printed per row: wall seconds, real-time factor (wall / audio seconds), ratio against the paper row of
the same length from this run, peak RSS, and two quality figures: spectral convergence of the phase
reconstruction against the vocoder's magnitude (paper eq. 1, lower is better), and the log-mel L1 (nats) of the
row's audio to the paper row's audio from the same seed (0 = the same clip; both samplers solve the same ODE from
the same noise). On a CUDA device each row also reports its peak GPU
memory (torch's allocator: the torch backend's models, sampler and Griffin-Lim).
`--repeat N` runs all rows N times, round after round (a slow minute on a shared machine then touches every row
alike), and prints each row's median wall time and range after: the ratios of medians are what to quote.
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

from engine.backends import BACKENDS, PRECISIONS
from engine.tasks.generate import generate

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "msanii-bench" / "paper-random"
KINDS = ("paper", "paperours", "fast")
DEFAULT_ROWS = "paper-10,paperours-10,fast-10,fast-30,fast-90,fast-190"


def parse_row(row: str) -> tuple[str, float]:
    kind, _, secs = row.partition("-")
    try:
        seconds = float(secs)
    except ValueError:
        seconds = -1.0
    if kind not in KINDS or not 0 < seconds <= 190.2:
        raise ValueError(f"bad row {row!r}: use KIND-SECONDS with KIND in {', '.join(KINDS)} and 0 < SECONDS <= 190")
    return kind, seconds


def scaler_music(sample_rate: int, path: Path | None = None):
    """Stereo float32 music [2, N] to fit the scalers on: `path` (.npy at `sample_rate`, or an audio file at that
    rate), else 10 s of the MIDI piece rendered by FluidSynth (bench.music)."""
    import numpy as np

    if path is None:
        from bench.music import music_snippet
        return music_snippet(10.0, sample_rate)
    if path.suffix == ".npy":
        audio = np.load(path)
    else:
        import soundfile as sf
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != sample_rate:
            raise ValueError(f"{path} is {rate} Hz; the scalers need {sample_rate} Hz audio")
        audio = audio.T
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"{path}: expected stereo audio [2, samples], got shape {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def make_paper_bundle(out: Path, music: Path | None = None) -> Path:
    """Random-weight paper-size U-Net + vocoder, scalers fitted on real (rendered) music, exported to `out`
    (`music`: see scaler_music; the device machines have no FluidSynth, so their runs carry the audio)."""
    import torch

    from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel
    from export.bundle_writer import ExportOptions, write_bundle
    from training.models import UNet, Vocoder, unet_preset, vocoder_preset

    cfg = SpectrogramConfig()
    torch.manual_seed(0)
    mel = log_mel(torch.from_numpy(scaler_music(cfg.sample_rate, music)), cfg)
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
                        ExportOptions(name="paper-random-bench", command="python -m bench.bench_render",
                                      torch_programs=True),
                        log=lambda m: print(f"  export: {m}", file=sys.stderr))


def row_settings(kind: str, steps: int, gl_iters: int, gl_init: str, sampler: str) -> dict:
    if kind == "paper":
        return {"sampler": "ddim", "steps": 200, "gl_iters": 200, "phase": "torchaudio", "gl_init": "random"}
    if kind == "paperours":
        return {"sampler": "ddim", "steps": 200, "gl_iters": 200, "phase": "fast", "gl_init": "random"}
    return {"sampler": sampler, "steps": steps, "gl_iters": gl_iters, "phase": "fast", "gl_init": gl_init}


def paper_bundle(cache: Path = DEFAULT_CACHE, music: Path | None = None) -> Path:
    """The cached paper-size random-weight bundle, exported on first use and again when the export's render
    defaults changed since (the fast rows run the bundle's defaults)."""
    import json
    import shutil

    from export.bundle_writer import DEFAULTS
    manifest = cache / "manifest.json"
    if manifest.is_file():
        cached = json.loads(manifest.read_text())
        if cached.get("defaults") != DEFAULTS.to_dict() or "unet.pt2" not in cached.get("files", {}):
            shutil.rmtree(cache)
    if not manifest.is_file():
        print(f"creating paper-size random-weight bundle in {cache} ...", file=sys.stderr)
        make_paper_bundle(cache, music)
    return cache


def run_row(row: str, bundle: Path, settings: dict, threads: int | None, audio_out: Path | None,
            engine_options: dict | None = None) -> dict:
    """Render one row in this process; returns its measurements (and saves the audio to `audio_out`).
    `engine_options`: Engine.load's device, backend, precision and cuda_graphs (default: onnxruntime on the CPU)."""
    import numpy as np
    import torch

    from engine.api import Engine

    _, seconds = parse_row(row)
    options = {"device": "cpu", **(engine_options or {})}
    engine = Engine.load(bundle, threads=threads, **options)
    importlib.import_module("engine.tasks.generate")  # warm process: imports are not part of a render's time
    # Warm engine, as in the OSC server: sessions, thread pools and FFT plans exist before the timed render.
    # CUDA graphs are recorded per input shape: warm up at the row's length so the timed render replays them.
    generate(engine, seconds if options.get("cuda_graphs") else 1.0, seed=1, **{**settings, "steps": 2, "gl_iters": 2})
    gpu = engine.tensor_device.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = generate(engine, seconds, seed=0, **settings)  # returns host audio: the GPU work is finished
    wall = time.perf_counter() - start
    if audio_out is not None:
        np.save(audio_out, result.audio)
    audio_s = result.audio.shape[-1] / result.sample_rate
    return {"row": row, **settings, "audio_s": audio_s, "wall_s": wall, "rtf": wall / audio_s,
            "sampling_s": result.info["sampling_s"], "decode_s": result.info["decode_s"],
            "spectral_convergence": result.info["spectral_convergence"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
            "threads": engine.threads, "device": engine.device, "backend": engine.backend,
            "precision": getattr(engine.denoiser, "precision", None),
            "cuda_graphs": bool(options.get("cuda_graphs"))}


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available, {platform.system()}{gpu}"


def mel_l1(a, b, cfg) -> float:
    """Mean |log-mel(a) - log-mel(b)| (nats) over the common length; audio [C, N] numpy at cfg's rate."""
    import torch

    from engine.dsp import log_mel

    n = min(a.shape[-1], b.shape[-1])
    return float((log_mel(torch.from_numpy(a[..., :n]), cfg) - log_mel(torch.from_numpy(b[..., :n]), cfg)).abs().mean())


def _run_row_process(row: str, parsed: tuple[str, float], bundle: Path, fast: tuple, args, out: Path) -> dict | None:
    """One row in its own process (its own peak RSS); None (with the child's error printed) if it failed."""
    settings = row_settings(parsed[0], *fast)
    cmd = [sys.executable, "-m", "bench.bench_render", "--bundle", str(bundle), "--row", row,
           "--settings", json.dumps(settings), "--audio-out", str(out)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--device", args.device, "--backend", args.backend] + (
        ["--precision", args.precision] if args.precision else []) + (["--cuda-graphs"] if args.cuda_graphs else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"row {row} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["load_avg"] = os.getloadavg()[0]
    return r


def _median_run(runs: list[dict]) -> dict:
    """The row's figures over its runs: median times, the largest peak memory, the first run's quality (the same
    seed gives the same clip every run)."""
    def median(key: str) -> float:
        values = sorted(r[key] for r in runs)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])
    out = {**runs[0], "runs": len(runs)}
    for key in ("wall_s", "rtf", "sampling_s", "decode_s", "load_avg"):
        out[key] = median(key)
    for key in ("peak_rss_mb", "peak_gpu_mb"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = max(values) if values else None
    return out


def _row_line(row: str, r: dict, note: str = "") -> str:
    ratio = f"{r['ratio_vs_paper']:.1f}x vs paper" if r["ratio_vs_paper"] else "no paper row yet"
    l1 = f", log-mel L1 to paper {r['mel_l1_to_paper']:.3f}" if r["mel_l1_to_paper"] is not None else ""
    gpu_mem = f" (GPU {r['peak_gpu_mb']:.0f} MB)" if r["peak_gpu_mb"] is not None else ""
    return (f"{row:14s} {r['sampler']:5s} {r['steps']:3d} steps + {r['phase']:10s} GL {r['gl_iters']:3d} "
            f"({r['gl_init']}): {r['wall_s']:8.1f} s{note} for {r['audio_s']:.2f} s audio, RTF {r['rtf']:.3f}, "
            f"{ratio} (sampling {r['sampling_s']:.1f} s, decode {r['decode_s']:.1f} s), peak RSS "
            f"{r['peak_rss_mb']:.0f} MB{gpu_mem}, SC {r['spectral_convergence']:.4f}{l1}, load {r['load_avg']:.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Paper settings vs fast path render benchmark.")
    p.add_argument("--bundle", type=Path, help="bundle to benchmark (default: a cached paper-size random bundle)")
    p.add_argument("--bundle-cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--scaler-audio", type=Path, help="music to fit the cached bundle's scalers on (.npy [2, N] or "
                   "an audio file at 44.1 kHz; default: the MIDI piece rendered by FluidSynth)")
    p.add_argument("--rows", default=DEFAULT_ROWS, help="comma list of KIND-SECONDS (paper|paperours|fast)")
    p.add_argument("--sampler", default=None, help="fast path sampler (bundle default)")
    p.add_argument("--steps", type=int, default=None, help="fast path sampler steps (bundle default)")
    p.add_argument("--gl-iters", type=int, default=None, help="fast path Griffin-Lim iterations (bundle default)")
    p.add_argument("--gl-init", default=None, help="fast path initial phase (bundle default)")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu", help="engine device: cpu (default), cuda, auto")
    p.add_argument("--backend", default="onnx", choices=BACKENDS, help="engine backend (onnx)")
    p.add_argument("--precision", choices=PRECISIONS, help="torch backend autocast precision")
    p.add_argument("--cuda-graphs", action="store_true", help="torch backend on CUDA: replay steps as CUDA graphs")
    p.add_argument("--repeat", type=int, default=1, help="rounds of all rows; medians are printed after (default 1)")
    p.add_argument("--json", type=Path, help="append results (one JSON object per row and run) to this file")
    p.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in a child process
    p.add_argument("--settings", help=argparse.SUPPRESS)
    p.add_argument("--audio-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")

    bundle = args.bundle if args.bundle is not None else paper_bundle(args.bundle_cache, args.scaler_audio)
    if args.row:
        engine_options = {"device": args.device, "backend": args.backend, "precision": args.precision,
                          "cuda_graphs": args.cuda_graphs}
        print(json.dumps(run_row(args.row, bundle, json.loads(args.settings), args.threads, args.audio_out,
                                 engine_options)))
        return 0

    import numpy as np

    from engine.bundle import load_bundle
    loaded = load_bundle(bundle)
    defaults = loaded.defaults
    fast = (args.steps if args.steps is not None else defaults.steps,
            args.gl_iters if args.gl_iters is not None else defaults.gl_iters,
            args.gl_init or defaults.gl_init, args.sampler or defaults.sampler)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    try:
        parsed = {row: parse_row(row) for row in rows}
    except ValueError as exc:
        print(f"bench_render: error: {exc}", file=sys.stderr)
        return 2
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"engine: device {args.device}, backend {args.backend}"
          + (f", precision {args.precision}" if args.precision else "") + (", CUDA graphs" if args.cuda_graphs else ""))
    print(f"bundle: {bundle} ({loaded.manifest['unet'].get('parameters', '?')} U-Net params)")
    runs: dict[str, list[dict]] = {row: [] for row in rows}
    audio = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.repeat + 1):
            # Rounds, not repeats in place: a slow minute on a shared machine then touches every row alike.
            for row in rows:
                r = _run_row_process(row, parsed[row], bundle, fast, args, Path(tmp) / f"{row}.npy")
                if r is None:
                    return 1
                audio.setdefault(row, np.load(Path(tmp) / f"{row}.npy"))
                paper_row = f"paper-{parsed[row][1]:g}"
                paper = runs[paper_row][-1] if runs.get(paper_row) and row != paper_row else None
                r["run"] = run
                r["ratio_vs_paper"] = paper["wall_s"] / r["wall_s"] if paper else None
                r["mel_l1_to_paper"] = (mel_l1(audio[row], audio[paper_row], loaded.spectrogram)
                                        if paper else None)
                runs[row].append(r)
                print(_row_line(row, r, f" (run {run}/{args.repeat})" if args.repeat > 1 else ""), flush=True)
                if args.json:
                    with open(args.json, "a", encoding="utf-8") as f:
                        f.write(json.dumps({**r, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")})
                                + "\n")
    results = {row: _median_run(rs) for row, rs in runs.items()}
    if args.repeat > 1:
        print(f"medians of {args.repeat} runs (wall range in brackets; ratio = the paper row's median / this row's):")
        for row in rows:
            r = results[row]
            paper = results.get(f"paper-{parsed[row][1]:g}")
            r["ratio_vs_paper"] = paper["wall_s"] / r["wall_s"] if paper else None
            walls = [x["wall_s"] for x in runs[row]]
            print(_row_line(row, r, f" [{min(walls):.1f}-{max(walls):.1f} s]"), flush=True)
    fast_rows = sorted((parsed[r][1], r) for r in rows if parsed[r][0] == "fast")
    if len(fast_rows) > 1:
        print("time vs length (fast rows): " + ", ".join(
            f"{secs:g} s -> {results[r]['wall_s']:.1f} s ({results[r]['wall_s'] / secs:.3f} s per audio s)"
            for secs, r in fast_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
