"""Loop wrap seam: our circular loops vs cutting an ordinary render to the same length.

For each seed: `engine.tasks.loop.loop` (circular sampling, wrap-padded vocoder, three-period Griffin-Lim and an
in-loop crossfade) and `generate` of the same length plus 0.5 s, cut to length. The wrap seam (last sample
-> first) is scored with engine.boundary against random points of the loop itself.
Run: `python -m bench.bench_loop [--bundle DIR] [--seconds 4] [--rate 48000] [--seeds 3]`.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from engine.boundary import loop_wrap_audio, measure_boundaries
from engine.tasks.generate import generate


def wrap_score(audio: np.ndarray, rate: int) -> dict:
    wrapped, seam = loop_wrap_audio(audio, min(audio.shape[-1] // 2, rate // 2))
    return measure_boundaries(wrapped, [seam], rate, reference=audio).to_dict()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="bundle directory (default: build the tests' tiny bundle)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rate", type=int, default=48_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from bench.bench_inpaint import tiny_bundle
    from engine.api import Engine
    from engine.audio_io import resample
    from engine.tasks.loop import loop

    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        engine = Engine.load(args.bundle or tiny_bundle(Path(tmp)), device="cpu", threads=args.threads)
        rows = {"loop (ours)": [], "render cut to length": []}
        for seed in range(args.seeds):
            ours = loop(engine, args.seconds, seed=seed, steps=args.steps, sample_rate=args.rate)
            rows["loop (ours)"].append(wrap_score(ours.audio, args.rate))
            plain = generate(engine, args.seconds + 0.5, seed=seed, steps=args.steps)
            cut = resample(plain.audio, plain.sample_rate, args.rate)[:, :round(args.seconds * args.rate)]
            rows["render cut to length"].append(wrap_score(cut, args.rate))
    print(f"## loop wrap seam, {args.seconds} s at {args.rate} Hz, {args.seeds} seeds, {args.steps} steps\n")
    print("| method | step ratio | step pct | flux ratio | flux pct |\n|---|---|---|---|---|")
    for name, scores in rows.items():
        mean = lambda k: float(np.mean([s[k] for s in scores]))  # noqa: E731
        print(f"| {name} | {mean('worst_step_ratio'):.2f} | {mean('worst_step_percentile'):.1f} | "
              f"{mean('worst_flux_ratio'):.2f} | {mean('worst_flux_percentile'):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
