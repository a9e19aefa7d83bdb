"""Region tasks on held-out music: inpainting and outpainting per sampler setting, with the level measure.

    python -m bench.region_quality [--bundle models/default] [--heldout data/corpus/heldout] [--clips 6]
                                   [--rows default,ddim-jump,ddim-jump-50,default-50,repaint-50] [--no-outpaint]
                                   [--a2a] [--loops]

Inpainting: the middle 3 s of each 10 s held-out clip regenerated (seed = clip index). Per row: U-Net calls,
seconds, **level** (region RMS minus the removed original's, dB: few-step samplers render quieter than the
music), the seams' worst step / flux percentiles (engine.boundary; 50 = like any point of the original), and
the region's chroma cosine / log-mel L1 to the removed original (bench.inpaint_report). Outpainting: 3 s past
the end, level of the new 3 s minus the original's last 3 s.
--a2a: audio-to-audio of the whole clip at strengths 0.3 and 0.6 (level against the source, log-mel L1 to it).
--loops: 4 s loops from noise (RMS, and the wrap point's seam percentiles: the loop joined to itself).
Rows: default = the engine's region default; ddim-jump = DDIM + 1 resampling jump (the previous default);
repaint = diffusers' RePaint (jump 10); a -N suffix sets the steps (else the bundle's).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.metrics import rms_db

ROWS = {"default": {}, "ddim-jump": {"sampler": "ddim", "jumps": 1}, "dpmpp": {"sampler": "dpmpp", "jumps": 0},
        "repaint": {"method": "repaint"}}


def parse_row(row: str) -> dict:
    """'ddim-jump-50' -> {"sampler": "ddim", "jumps": 1, "steps": 50}; 'default' -> {}."""
    name, _, steps = row.rpartition("-") if row.rsplit("-", 1)[-1].isdigit() else (row, "", "")
    if name not in ROWS:
        raise ValueError(f"bad row {row!r}: use {', '.join(ROWS)}, optionally with -STEPS")
    return {**ROWS[name], **({"steps": int(steps)} if steps else {})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Inpainting/outpainting quality per sampler setting on held-out music.")
    p.add_argument("--bundle", type=Path, default=Path("models/default"))
    p.add_argument("--heldout", type=Path, default=Path("data/corpus/heldout"))
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--rows", default="default,ddim-jump,ddim-jump-50,default-50,repaint-50")
    p.add_argument("--no-outpaint", action="store_true")
    p.add_argument("--a2a", action="store_true", help="also audio-to-audio at strengths 0.3 and 0.6")
    p.add_argument("--loops", action="store_true", help="also 4 s loops from noise: level and wrap seam")
    args = p.parse_args(argv)

    from bench.inpaint_report import measure_inpaint
    from bench.quality_report import load_clips
    from engine.api import Engine
    from engine.tasks.outpaint import outpaint
    from engine.audio_io import NativeAudio

    rows = {r: parse_row(r) for r in args.rows.split(",") if r.strip()}
    engine = Engine.load(args.bundle, device="cpu")
    rate = engine.sample_rate
    clips = load_clips(args.heldout, 10.0, args.clips, rate)
    print(f"bundle {engine.name}; {len(clips)} held-out clips of 10 s; inpaint 3.5-6.5 s, outpaint +3 s")
    print("\n| row | U-Net calls | seconds | level dB | seams step / flux | chroma cosine | log-mel L1 |"
          + (" outpaint level dB |" if not args.no_outpaint else "") + "\n|---|---|---|---|---|---|---|"
          + ("---|" if not args.no_outpaint else ""))
    for name, kw in rows.items():
        found = []
        for i, clip in enumerate(clips):
            source = NativeAudio(np.ascontiguousarray(clip.T), rate, "FLOAT", "WAV")
            r = measure_inpaint(engine, source, clip, 3.5, 6.5, seed=i, **kw)
            out_level = np.nan
            if not args.no_outpaint and kw.get("method") != "repaint":
                extended = np.asarray(outpaint(engine, source, right=3.0, seed=i, **kw).audio, dtype=np.float32)
                n = clip.shape[1]
                out_level = rms_db(extended[:, n:n + 3 * rate]) - rms_db(clip[:, n - 3 * rate:])
            found.append([r["unet_calls"], r["seconds"], r["level_db"], r["step_pct"], r["flux_pct"],
                          r["chroma_cosine"], r["log_mel_l1"], out_level])
        m, sd = np.mean(found, axis=0), np.std(found, axis=0)
        cells = "" if args.no_outpaint else " n/a |" if np.isnan(m[7]) else f" {m[7]:+.1f} ± {sd[7]:.1f} |"
        print(f"| {name} | {m[0]:.0f} | {m[1]:.1f} | {m[2]:+.1f} ± {sd[2]:.1f} | {m[3]:.0f} / {m[4]:.0f} | "
              f"{m[5]:.3f} | {m[6]:.3f} |{cells}", flush=True)
    if args.a2a:
        audio_to_audio_table(engine, clips, [r for r in rows if rows[r].get("method") != "repaint"], rows)
    if args.loops:
        loop_table(engine, len(clips), [r for r in rows if rows[r].get("method") != "repaint"], rows)
    return 0


def audio_to_audio_table(engine, clips: list[np.ndarray], names: list[str], rows: dict) -> None:
    import torch

    from engine.dsp import log_mel
    from engine.tasks.audio2audio import audio2audio
    from engine.audio_io import NativeAudio

    rate, cfg = engine.sample_rate, engine.bundle.spectrogram
    print("\n| audio-to-audio | strength | U-Net calls | level dB | log-mel L1 to source |\n|---|---|---|---|---|")
    for strength in (0.3, 0.6):
        for name in names:
            found = []
            for i, clip in enumerate(clips):
                source = NativeAudio(np.ascontiguousarray(clip.T), rate, "FLOAT", "WAV")
                result = audio2audio(engine, source, strength, seed=i, **rows[name])
                audio = np.asarray(result.audio, dtype=np.float32)
                l1 = float((log_mel(torch.from_numpy(audio), cfg) - log_mel(torch.from_numpy(clip), cfg)).abs().mean())
                found.append([result.info["unet_calls"], rms_db(audio) - rms_db(clip), l1])
            m, sd = np.mean(found, axis=0), np.std(found, axis=0)
            print(f"| {name} | {strength:g} | {m[0]:.0f} | {m[1]:+.1f} ± {sd[1]:.1f} | {m[2]:.3f} |", flush=True)


def loop_table(engine, seeds: int, names: list[str], rows: dict) -> None:
    from engine.boundary import measure_boundaries
    from engine.tasks.loop import loop

    print("\n| 4 s loop | level dB | wrap seam step / flux (per-seed range) |\n|---|---|---|")
    for name in names:
        kw = {k: v for k, v in rows[name].items() if k != "jumps"}  # loops run without jumps
        levels, seams = [], []
        for seed in range(seeds):
            audio = np.asarray(loop(engine, 4.0, seed=seed, **kw).audio, dtype=np.float32)
            twice = np.concatenate([audio, audio], axis=1)
            report = measure_boundaries(twice, [audio.shape[1]], engine.sample_rate, reference=[twice])
            levels.append(rms_db(audio))
            seams.append([report.worst_step_percentile, report.worst_flux_percentile])
        s = np.asarray(seams)
        print(f"| {name} | {np.mean(levels):+.1f} ± {np.std(levels):.1f} | {s[:, 0].mean():.0f} / {s[:, 1].mean():.0f} "
              f"({s[:, 0].min():.0f}-{s[:, 0].max():.0f} / {s[:, 1].min():.0f}-{s[:, 1].max():.0f}) |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
