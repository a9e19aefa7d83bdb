"""Quality report for a bundle against held-out audio: `python -m bench.quality_report --bundle models/default
--heldout data/corpus/heldout --out models/default/REPORT.md`.

1. Vocoder: spectral convergence (SC) and log-magnitude L1 of the predicted magnitude, and SC of the audio after
   the same Griffin-Lim, vs the paper's baseline (mel pseudo-inverse + the same Griffin-Lim); a PNG of the
   original / baseline / ours spectrograms.
2. Generation: seeded clips with spectrogram PNGs; statistics against held-out audio (mel-band energy
   distance, onset rate, chroma entropy), with white noise as a reference point.
3. Inpainting (when engine.tasks.inpaint exists): boundary measure and held-out region similarity, ours vs RePaint.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from bench import metrics
from engine.api import Engine
from engine.audio_io import write_audio
from engine.dsp import log_mel, stft_magnitude
from engine.dsp.mel_inverse import mel_to_magnitude
from engine.dsp.phase import fast_griffin_lim, spectral_convergence
from engine.render import vocode


def load_clips(folder: Path, seconds: float, count: int, rate: int) -> list[np.ndarray]:
    """Up to `count` clips of `seconds` from the middle of each held-out file, [2, samples] float32."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not files:
        raise SystemExit(f"no held-out audio in {folder}")
    clips = []
    for path in files[:count]:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != rate:
            audio = soxr.resample(audio, sr, rate)
        audio = audio.T if audio.shape[1] > 1 else np.repeat(audio.T, 2, 0)
        n = int(seconds * rate)
        start = max(0, (audio.shape[1] - n) // 2)
        clip = audio[:2, start:start + n]
        if clip.shape[1] == n:
            clips.append(np.ascontiguousarray(clip))
    return clips


def log_mag_l1(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> float:
    return float((torch.log(est + eps) - torch.log(ref + eps)).abs().mean())


def vocoder_section(engine: Engine, clips: list[np.ndarray], gl_iters: int, out_dir: Path) -> dict:
    cfg = engine.bundle.spectrogram
    rows = {"ours": [], "baseline": []}
    for i, clip in enumerate(clips):
        audio = torch.from_numpy(clip)
        ref = stft_magnitude(audio, cfg)
        frames = ref.shape[-1]
        ours = vocode(engine.encode(audio)[None], engine.bundle, engine.vocoder, frames)[0]
        mel = torch.exp(log_mel(audio, cfg)) - cfg.log_floor
        base = mel_to_magnitude(mel.clamp_min(0), cfg)
        for name, mag in (("ours", ours), ("baseline", base)):
            g = torch.Generator().manual_seed(i)
            wav = fast_griffin_lim(mag, cfg, n_iter=gl_iters, length=audio.shape[-1], generator=g)
            rows[name].append({
                "magnitude_sc": float(torch.linalg.vector_norm(mag - ref) / torch.linalg.vector_norm(ref)),
                "log_magnitude_l1": log_mag_l1(mag, ref),
                "audio_sc": spectral_convergence(wav, ref, cfg),
            })
        if i == 0:
            spectrogram_png(out_dir / "vocoder.png", [("original", ref), ("baseline: pseudo-inverse", base),
                                                       ("ours: neural vocoder", ours)], cfg)
    return {name: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for name, v in rows.items()}


def spectrogram_png(path: Path, panels: list[tuple[str, torch.Tensor]], cfg) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False)
    for ax, (title, mag) in zip(axes[:, 0], panels):
        db = 20 * torch.log10(mag[0].clamp_min(1e-5)).numpy()
        seconds = mag.shape[-1] * cfg.hop_length / cfg.sample_rate
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
                  extent=(0, seconds, 0, cfg.sample_rate / 2000))
        ax.set_title(title), ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def stats_of(clips, cfg) -> dict:
    s = [metrics.summary(c, cfg) for c in clips]
    bands = np.mean([metrics.mel_band_energy(c, cfg) for c in clips], axis=0)
    return {"clips": s, "bands": bands,
            **{k: (float(np.mean([x[k] for x in s])), float(np.std([x[k] for x in s]))) for k in s[0]}}


def generation_section(engine: Engine, heldout: list[np.ndarray], seeds: list[int], seconds: float,
                       out_dir: Path, keep_wavs: int) -> dict:
    cfg = engine.bundle.spectrogram
    generated, timings = [], []
    for k, seed in enumerate(seeds):
        t0 = time.perf_counter()
        result = engine.generate(seconds, seed=seed)
        timings.append(time.perf_counter() - t0)
        generated.append(result.audio)
        if k < keep_wavs:
            path = out_dir / f"sample-seed{seed}.flac"
            path.unlink(missing_ok=True)
            write_audio(path, result.audio, result.sample_rate, format="flac", bit_depth=16)
        if k < 3:
            spectrogram_png(out_dir / f"sample-seed{seed}.png",
                            [(f"generated, seed {seed}", stft_magnitude(torch.from_numpy(result.audio), cfg))], cfg)
    noise = [np.random.default_rng(s).standard_normal(g.shape).astype(np.float32) * 0.1
             for s, g in zip(seeds, generated)]
    ref, gen, noi = stats_of(heldout, cfg), stats_of(generated, cfg), stats_of(noise, cfg)
    half = len(heldout) // 2
    split = metrics.band_energy_distance(stats_of(heldout[:half], cfg)["bands"], stats_of(heldout[half:], cfg)["bands"])
    return {"heldout": ref, "generated": gen, "noise": noi, "seconds_per_clip": float(np.mean(timings)),
            "band_distance": {"generated_vs_heldout": metrics.band_energy_distance(gen["bands"], ref["bands"]),
                              "noise_vs_heldout": metrics.band_energy_distance(noi["bands"], ref["bands"]),
                              "heldout_half_vs_half": split}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="REPORT.md path; pictures go beside it")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--gl-iters", type=int, default=64)
    parser.add_argument("--keep-wavs", type=int, default=2)
    args = parser.parse_args(argv)
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine.load(args.bundle)
    heldout = load_clips(args.heldout, args.seconds, args.clips, engine.sample_rate)
    voc = vocoder_section(engine, heldout, args.gl_iters, out_dir)
    gen = generation_section(engine, heldout, args.seeds, args.seconds, out_dir, args.keep_wavs)
    sections = {"vocoder": voc, "generation": gen}
    try:
        from bench.inpaint_report import inpaint_section  # region tasks: optional until they land
        sections["inpainting"] = inpaint_section(engine, heldout, out_dir)
    except ImportError:
        sections["inpainting"] = None
    text = render_markdown(engine, args, len(heldout), sections)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    (out_dir / "report.json").write_text(json.dumps(_jsonable(sections), indent=1))
    print(text)
    return 0


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if k != "clips"}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.round(6).tolist()
    return obj


def render_markdown(engine: Engine, args, n_heldout: int, s: dict) -> str:
    m = engine.bundle.manifest
    prov = m.get("provenance", {})
    voc, gen = s["vocoder"], s["generation"]
    lines = [
        f"# Quality report: `{engine.name}`", "",
        f"Produced by `python -m bench.quality_report --bundle {args.bundle} --heldout {args.heldout} "
        f"--out {args.out}` on {time.strftime('%Y-%m-%d')}. Held-out clips: {n_heldout} x {args.seconds:g} s "
        "(never seen in training).", "",
        f"Provenance: {json.dumps(prov)}", "",
        "## Vocoder on held-out audio", "",
        f"Griffin-Lim for both: fast variant, {args.gl_iters} iterations. Lower is better.", "",
        "| method | magnitude SC | log-magnitude L1 | audio SC after Griffin-Lim |", "|---|---|---|---|",
    ]
    for name, label in (("baseline", "mel pseudo-inverse (paper baseline)"), ("ours", "neural vocoder (ours)")):
        r = voc[name]
        lines.append(f"| {label} | {r['magnitude_sc']:.4f} | {r['log_magnitude_l1']:.4f} | {r['audio_sc']:.4f} |")
    lines += ["", "![vocoder](vocoder.png)", "", "## Generation", "",
              f"Seeds {args.seeds}, {args.seconds:g} s each, bundle defaults "
              f"({json.dumps(m.get('defaults', {}))}); {gen['seconds_per_clip']:.1f} s per clip on this machine.", "",
              "| audio | RMS dB | onsets / s | chroma entropy (bits, max 3.58) |", "|---|---|---|---|"]
    for key, label in (("heldout", "held-out (real)"), ("generated", "generated"), ("noise", "white noise")):
        g = gen[key]
        lines.append(f"| {label} | {g['rms_db'][0]:.1f} ± {g['rms_db'][1]:.1f} | {g['onset_rate'][0]:.2f} ± "
                     f"{g['onset_rate'][1]:.2f} | {g['chroma_entropy'][0]:.2f} ± {g['chroma_entropy'][1]:.2f} |")
    d = gen["band_distance"]
    lines += ["", "Mel-band energy distribution distance (Jensen-Shannon, bits; 0 = same):", "",
              f"- generated vs held-out: **{d['generated_vs_heldout']:.3f}**",
              f"- held-out half vs other half (natural spread): {d['heldout_half_vs_half']:.3f}",
              f"- white noise vs held-out (reference point): {d['noise_vs_heldout']:.3f}", ""]
    lines += [f"![seed {seed}](sample-seed{seed}.png)" for seed in args.seeds[:3]]
    if s.get("inpainting"):
        lines += ["", "## Inpainting and outpainting", "", s["inpainting"]["markdown"]]
    else:
        lines += ["", "## Inpainting and outpainting", "", "Not measured in this report (region tasks absent)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
