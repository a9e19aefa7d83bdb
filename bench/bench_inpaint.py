"""Inpainting: our replacement sampler vs diffusers' RePaint (j=10, r=10, as the reference implementation).

Two measurements:
1. On a bundle (default: the tests' tiny bundle, random weights) and real instrument audio (FluidSynth render of
   bench.music): U-Net calls, wall seconds and the boundary measure at the region's two seams, for the same input,
   region and seed. Run: `python -m bench.bench_inpaint [--bundle DIR] [--steps 50] [--out results.json]`.
2. `--exact`: on data whose exact denoiser is known in closed form (mel rows constant in time), how well each
   method makes the filled frames agree with the context (mean abs error of the filled rows, relative to the
   rows' own size) against its U-Net calls - the harmonisation RePaint's jumps pay for, measured without a
   trained model. It is where our jump window (late steps) comes from.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.bundle import DiffusionSettings
from engine.masked_sampling import MaskedConfig, count_unet_calls, ddim_scheduler, masked_sample

SCHEDULE = DiffusionSettings(1000, "squaredcos_cap_v2", "epsilon")


class RowMeanDenoiser:
    """Exact epsilon-prediction for mels whose rows are constant in time with N(0, scale^2) values."""

    def __init__(self, scale: float = 0.4) -> None:
        self.scale = scale
        self.alphas = ddim_scheduler(SCHEDULE).alphas_cumprod.double()
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        a, s2 = float(self.alphas[int(t[0])]), self.scale ** 2
        row = a ** 0.5 * s2 * x.double().sum(-1, keepdim=True) / (a * s2 * x.shape[-1] + (1 - a))
        return ((x.double() - a ** 0.5 * row) / (1 - a) ** 0.5).float()


def exact_study(steps: int, seeds: int = 16) -> list[dict]:
    configs = [("replace, no jumps", MaskedConfig(steps=steps, jumps=0))]
    for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (0.2, 0.6), (0.5, 1.0), (0.0, 1.0)):
        configs.append((f"replace, 1 jump in {lo:.2f}-{hi:.2f}", MaskedConfig(steps=steps, jumps=1, jump_window=(lo, hi))))
    configs.append(("RePaint j=10 r=10", MaskedConfig(steps=steps, method="repaint")))
    rows = []
    for name, config in configs:
        errors = []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(1000 + seed)
            values = torch.randn(1, 2, 16, 1, generator=g) * 0.4
            known = values.expand(1, 2, 16, 48).clone()
            mask = torch.ones(1, 1, 1, 48)
            mask[..., 16:32] = 0
            out = masked_sample(RowMeanDenoiser(), known, mask, SCHEDULE, config, g)
            errors.append(float((out[..., 16:32] - values).abs().mean() / values.abs().mean()))
        rows.append({"method": name, "unet_calls": count_unet_calls(config), "relative_error": float(np.mean(errors))})
    return rows


def tiny_bundle(folder: Path) -> Path:
    """The tests' tiny bundle (random weights), exported through ONNX like the test fixture does."""
    from export.bundle_writer import ExportOptions, write_bundle
    from tests.conftest import make_tiny_run
    from training.checkpoint import LAST, load_checkpoint

    run = make_tiny_run(folder / "run")
    return write_bundle(load_checkpoint(run / "unet" / LAST, "unet"), load_checkpoint(run / "vocoder" / LAST, "vocoder"),
                        folder / "bundle", ExportOptions(name="tiny-bench", command="bench/bench_inpaint.py"),
                        sources={})


def bundle_study(bundle: Path, steps: int, seconds: float, regions: list[tuple[float, float]], seeds: int,
                 gl_iters: int, rate: int, threads: int) -> list[dict]:
    """Each method on the same music, regions and seeds; boundary numbers are the worst seam of a run, averaged
    over the seeds."""
    from bench.music import music_snippet
    from engine.api import Engine
    from engine.tasks.inpaint import inpaint
    from engine.audio_io import read_native

    engine = Engine.load(bundle, device="cpu", threads=threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-inpaint-") as tmp:
        path = Path(tmp) / "music.wav"
        sf.write(str(path), music_snippet(seconds, rate).T, rate, subtype="PCM_24")
        src = read_native(path)
        runs = [("replace (ours), no jumps", {"method": "replace", "jumps": 0}),
                ("replace (ours), default: 1 jump late", {"method": "replace"}),
                ("RePaint j=10 r=10 (reference)", {"method": "repaint"}),
                ("ablation: ours, no crossfade", {"method": "replace", "fade_ms": 0.0}),
                ("ablation: ours, paper phase (random GL, not anchored), no crossfade",
                 {"method": "replace", "fade_ms": 0.0, "phase": "free"}),
                ("ablation: RePaint + paper phase, no crossfade", {"method": "repaint", "fade_ms": 0.0, "phase": "free"})]
        keep = np.ones(src.frames, dtype=bool)
        for a, b in regions:
            keep[round(a * rate):round(b * rate)] = False
        for name, kwargs in runs:
            runs_out = []
            for seed in range(seeds):
                start = time.perf_counter()
                result = inpaint(engine, src, list(regions), seed=seed, steps=steps, gl_iters=gl_iters, **kwargs)
                wall = time.perf_counter() - start
                runs_out.append((result, wall))
            mean = lambda key: float(np.mean([r.info["boundary"][key] for r, _ in runs_out]))  # noqa: E731
            rows.append({"method": name, "steps": steps, "unet_calls": runs_out[0][0].info["unet_calls"],
                         "sampling_s": round(float(np.mean([r.info["sampling_s"] for r, _ in runs_out])), 2),
                         "total_s": round(float(np.mean([w for _, w in runs_out])), 2),
                         "step_ratio": round(mean("worst_step_ratio"), 2),
                         "step_pct": round(mean("worst_step_percentile"), 1),
                         "flux_ratio": round(mean("worst_flux_ratio"), 2),
                         "flux_pct": round(mean("worst_flux_percentile"), 1),
                         "bit_identical_outside": all(np.array_equal(r.samples[keep], src.samples[keep])
                                                      for r, _ in runs_out)})
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="bundle directory (default: build the tests' tiny bundle)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seconds", type=float, default=12.0, help="length of the music input")
    p.add_argument("--region", type=float, nargs=2, action="append", metavar=("START", "END"),
                   help="region to inpaint, repeatable (default: 2-3.5, 5-7 and 9-10 s)")
    p.add_argument("--seeds", type=int, default=3, help="runs per method (boundary numbers are averaged)")
    p.add_argument("--rate", type=int, default=48_000, help="input file's sample rate (default 48 kHz, a DAW's)")
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: on a shared 2-core machine more threads make torch's small "
                        "element-wise ops, which RePaint's undo steps are full of, spin and stall)")
    p.add_argument("--exact", action="store_true", help="also run the exact-denoiser harmonisation study")
    p.add_argument("--out", type=Path, help="write all results as JSON here")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    results: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        bundle = args.bundle or tiny_bundle(Path(tmp))
        regions = [tuple(r) for r in (args.region or [(2.0, 3.5), (5.0, 7.0), (9.0, 10.0)])]
        results["bundle"] = bundle_study(bundle, args.steps, args.seconds, regions, args.seeds, args.gl_iters,
                                         args.rate, args.threads)
    print(f"## inpainting {regions} s of {args.seconds} s music (FluidSynth) at {args.rate} Hz, {args.steps} steps, "
          f"{args.seeds} seeds, {args.threads} CPU thread(s), bundle {args.bundle or 'tiny (random weights)'}\n")
    print(table(results["bundle"]))
    if args.exact:
        results["exact"] = exact_study(args.steps)
        print(f"\n## exact denoiser: filled frames vs context ({args.steps} steps, 16 seeds)\n")
        print(table(results["exact"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
