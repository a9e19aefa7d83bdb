"""Fewer sampler steps at equal quality: DDIM and DPM-Solver++ (orders 1-3) over step counts, against the
paper's DDIM 200 from the same starting noise, on a trained bundle.

    python -m bench.sweep_steps [--bundle models/default] [--heldout data/corpus/heldout] [--seconds 10]
                                [--seeds 0,1,2,3] [--rows ddim-25,ddim-50,dpmpp2lin-15,dpmpp3-15,...]

Rows: ddim-N (the paper's sampler, linear spacing), dpmppK-N (DPM-Solver++ order K on log-SNR-spaced steps, as
generation runs it; the engine's default is dpmpp3-15), dpmppKlin-N (the same on linear steps).

Both samplers solve the same probability-flow ODE, so from the same noise they should land on the same clip; the
quality figures per row:
- "log-mel L1 to DDIM 200": mean |log-mel difference| (nats) to the paper settings' clip, same noise. DDIM 100 vs
  200 shows how far the reference itself is from converged.
- "band JS": mel-band energy distribution distance (bits, bench.metrics) of the rows' clips to held-out audio, as in
  the quality report (the held-out set's own two halves differ by ~0.3).
- with --audio-stats, each clip is also decoded (vocoder + the bundle's Griffin-Lim) and the report's statistics
  are taken on the audio: onsets per second, chroma entropy, RMS, and the phase's spectral convergence.
Timing: U-Net calls x the measured per-call time at this length (the sampler's own arithmetic is < 1 %,
bench/profile_render.py), so rows compare compute, not noise between runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_ROWS = ("ddim-25,ddim-50,ddim-100,dpmpp2lin-15,dpmpp2lin-25,dpmpp1-15,dpmpp1-25,dpmpp2-8,dpmpp2-10,dpmpp2-12,"
                "dpmpp2-15,dpmpp2-20,"
                "dpmpp2-25,dpmpp2-50,dpmpp3-8,dpmpp3-10,dpmpp3-12,dpmpp3-15,dpmpp3-20,dpmpp3-25")


PAPER = ("ddim", 2, 200, "linear")


def parse_row(row: str) -> tuple[str, int, int, str]:
    """'ddim-50' -> ("ddim", 2, 50, "linear"); 'dpmpp3-15' -> ("dpmpp", 3, 15, "logsnr") (generation's spacing);
    'dpmpp2lin-15' -> ("dpmpp", 2, 15, "linear")."""
    name, steps = row.split("-")
    if name == "ddim":
        return "ddim", 2, int(steps), "linear"
    if name.startswith("dpmpp") and name[5:6] in ("1", "2", "3") and name[6:] in ("", "lin"):
        return "dpmpp", int(name[5]), int(steps), "linear" if name.endswith("lin") else "logsnr"
    raise ValueError(f"bad row {row!r}: use ddim-N, dpmppK-N (log-SNR spacing) or dpmppKlin-N, K in 1..3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Sampler/steps sweep against DDIM 200 at equal starting noise.")
    p.add_argument("--bundle", type=Path, default=Path("models/default"))
    p.add_argument("--heldout", type=Path, default=Path("data/corpus/heldout"))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--rows", default=DEFAULT_ROWS)
    p.add_argument("--threads", type=int)
    p.add_argument("--audio-stats", action="store_true", help="decode every clip and add the report's statistics")
    args = p.parse_args(argv)

    from bench.bench_render import machine
    from bench.metrics import band_energy_distance, band_energy_of_mel, mel_band_energy, summary
    from engine.dsp.phase import spectral_convergence
    from engine.dsp.scaler import normalise
    from bench.quality_report import load_clips
    from engine.api import Engine
    from engine.dsp.scaler import denormalise
    from engine.render import clip_length
    from engine.sampling import make_scheduler, sample

    engine = Engine.load(args.bundle, device="cpu", threads=args.threads)
    bundle = engine.bundle
    cfg = bundle.spectrogram
    length = clip_length(args.seconds, bundle)
    rows = [parse_row(r) for r in args.rows.split(",") if r.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    heldout = None
    if args.heldout.is_dir():
        clips = load_clips(args.heldout, args.seconds, 8, bundle.sample_rate)
        heldout = np.mean([mel_band_energy(c, cfg) for c in clips], axis=0)

    x = torch.randn(1, bundle.channels, cfg.n_mels, length.model_frames)
    engine.denoiser(x, torch.full((1,), 500.0))  # warm the session
    t0 = time.perf_counter()
    for _ in range(3):
        engine.denoiser(x, torch.full((1,), 500.0))
    per_call = (time.perf_counter() - t0) / 3
    print(f"machine: {machine()}; bundle {bundle.name}; {args.seconds:g} s ({length.model_frames} frames); "
          f"U-Net call {per_call * 1000:.0f} ms; seeds {seeds}")

    def audio_stats(logmel: torch.Tensor) -> dict[str, float]:
        audio, magnitude = engine.decode(normalise(logmel, bundle.unet_stats), length.samples,
                                         generator=torch.Generator().manual_seed(0))
        return {**summary(audio.numpy(), cfg), "sc": spectral_convergence(audio, magnitude, cfg)}

    def run(sampler: str, order: int, steps: int, spacing: str, noise: torch.Tensor) -> torch.Tensor:
        scheduler = make_scheduler(sampler, order=order, steps=steps, **bundle.diffusion.to_dict())
        out = sample(engine.denoiser, noise * scheduler.init_noise_sigma, scheduler, steps, disable=True,
                     spacing=spacing)
        return denormalise(out[0, ..., :length.frames], bundle.unet_stats)  # log-mel [C, n_mels, frames]

    results: dict[tuple, dict] = {}
    for seed in seeds:
        noise = torch.randn(1, bundle.channels, cfg.n_mels, length.model_frames,
                            generator=torch.Generator().manual_seed(seed))
        reference = run(*PAPER, noise)
        for key in [PAPER] + rows:
            mel = reference if key == PAPER else run(*key, noise)
            r = results.setdefault(key, {"l1": [], "energy": [], "audio": []})
            r["l1"].append(float((mel - reference).abs().mean()))
            # mel-band energy of the channels' mean linear mel (the model's log-mel, no audio needed)
            r["energy"].append(band_energy_of_mel((torch.exp(mel) - cfg.log_floor).clamp_min(0).mean(0)))
            if args.audio_stats:
                r["audio"].append(audio_stats(mel))
        print(f"  seed {seed} done", file=sys.stderr, flush=True)

    extra = " onsets/s | chroma entropy | RMS dB | phase SC |" if args.audio_stats else ""
    print("\n| sampler | order | spacing | steps | U-Net calls | est. sampling s | speed-up vs DDIM 200 | log-mel L1 to DDIM 200 "
          "| band JS to held-out |" + extra + "\n|---|---|---|---|---|---|---|---|---|" + "---|" * extra.count("|"))
    for (sampler, order, steps, spacing), r in results.items():
        js = band_energy_distance(np.mean(r["energy"], axis=0), heldout) if heldout is not None else float("nan")
        cells = ""
        if args.audio_stats:
            def stat(k: str, fmt: str) -> str:
                v = [a[k] for a in r["audio"]]
                return f" {np.mean(v):{fmt}} ± {np.std(v):{fmt}} |"
            cells = stat("onset_rate", ".2f") + stat("chroma_entropy", ".2f") + stat("rms_db", ".1f") + stat("sc", ".3f")
        print(f"| {sampler} | {order if sampler == 'dpmpp' else '-'} | {spacing} | {steps} | {steps} | {steps * per_call:.2f} | "
              f"{200 / steps:.1f}x | {np.mean(r['l1']):.4f} | {js:.3f} |{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
