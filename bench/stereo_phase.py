"""Does the decoded stereo hold together? Inter-channel coherence and the mono fold-down of each phase method.

    python -m bench.stereo_phase [--heldout data/piano/heldout] [--bundle models/default] [--clips 6]
                                 [--iters 96] [--fractions 0,0.25,0.5,0.75,1]

Per held-out clip (10 s, stereo): the target magnitude is the clip's own |STFT| (the phase problem alone), or with
--bundle what that bundle's vocoder makes of the clip's mel (what a render hands to the phase stage). Each variant
decodes it: "independent" (fast Griffin-Lim per channel, the paper's way) and "linked f" (engine.dsp.linked_phase,
a share f of the iterations on the channels' common magnitude). Printed per variant, beside the real audio:
- coherence per band: how consistently the channels' phases relate over ~0.19 s windows, energy-weighted over the
  band's bins (band_coherence; 1 = one phase relation throughout, ~0 = unrelated phases);
- SC: per-channel spectral convergence against the target (paper eq. 1): what linking costs in fidelity;
- mono mel change, flatness and chroma entropy (bench.musicality's measures of the fold-down, which comb-filters
  where the channels' phases disagree).
"""
from __future__ import annotations

import engine  # noqa: F401  (first: sets passive OpenMP waiting before torch loads)

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.musicality import clip_measures
from bench.quality_report import load_clips
from engine.dsp import SpectrogramConfig, stft_magnitude
from engine.dsp.linked_phase import linked_griffin_lim
from engine.dsp.phase import fast_griffin_lim, spectral_convergence
from engine.dsp.spectrogram import stft_complex

BANDS = ((60, 250), (250, 1000), (1000, 4000), (4000, 16000))
COHERENCE_FRAMES = 8  # ~0.19 s at hop 1024: the span over which a listener hears two channels as one source


def band_coherence(audio: torch.Tensor, cfg: SpectrogramConfig, window: int = COHERENCE_FRAMES) -> np.ndarray:
    """Stereo audio [2, samples] -> short-time coherence per band of BANDS: over windows of `window` frames,
    sum |sum_t L R*| / sum sqrt(sum_t |L|^2 sum_t |R|^2), the sums over the band's bins and the clip's windows
    (energy-weighted: the loud partials one hears count, not the noise floor between them)."""
    spec = stft_complex(audio, cfg).double()  # [2, F, T]
    frames = spec.shape[-1] // window * window
    spec = spec[..., :frames].reshape(2, spec.shape[1], -1, window)  # [2, F, windows, window]
    left, right = spec[0], spec[1]
    cross = (left * right.conj()).sum(-1).abs().sum(-1).numpy()  # [F]
    power = (left.abs().square().sum(-1) * right.abs().square().sum(-1)).sqrt().sum(-1).numpy()
    freqs = np.arange(cross.shape[0]) * cfg.sample_rate / cfg.n_fft
    bands = [(freqs >= lo) & (freqs < hi) for lo, hi in BANDS]
    return np.array([cross[b].sum() / max(power[b].sum(), 1e-20) for b in bands])


def decoders(fractions: list[float], cfg: SpectrogramConfig, iters: int) -> dict:
    def seeded():
        return torch.Generator().manual_seed(0)
    variants = {"independent": lambda m, n: fast_griffin_lim(m, cfg, n_iter=iters, length=n, generator=seeded())}
    for f in fractions:
        variants[f"linked {f:g}"] = (lambda m, n, f=f: linked_griffin_lim(m, cfg, n_iter=iters, length=n,
                                                                         generator=seeded(), shared_fraction=f))
    return variants


def measure(clips: list[np.ndarray], cfg: SpectrogramConfig, variants: dict, target) -> dict:
    rows: dict[str, list] = {"real": []}
    for clip in clips:
        audio = torch.from_numpy(clip)
        rows["real"].append((band_coherence(audio, cfg), float("nan"), mono_measures(clip, cfg)))
        magnitude = target(audio)
        n = cfg.hop_length * (magnitude.shape[-1] - 1)
        for name, decode in variants.items():
            out = decode(magnitude, n)
            rows.setdefault(name, []).append((band_coherence(out, cfg), spectral_convergence(out, magnitude, cfg),
                                              mono_measures(out.numpy(), cfg)))
    return rows


def mono_measures(audio: np.ndarray, cfg: SpectrogramConfig) -> dict:
    """bench.musicality's measures of the fold-down [1, samples] (clip_measures itself hears each channel alone)."""
    return clip_measures(np.asarray(audio, dtype=np.float32).mean(0, keepdims=True), cfg)


def table(rows: dict) -> str:
    head = " / ".join(f"{lo}-{hi}" for lo, hi in BANDS)
    lines = [f"| audio | coherence {head} Hz | SC per channel | mono mel change | mono flatness | mono chroma |",
             "|---|---|---|---|---|---|"]
    for name, items in rows.items():
        coherence = np.mean([c for c, _, _ in items], 0)
        sc = np.mean([s for _, s, _ in items])
        m = {k: np.mean([x[k] for _, _, x in items]) for k in ("mel_change", "flatness", "chroma_entropy")}
        sc_cell = "-" if np.isnan(sc) else f"{sc:.4f}"
        lines.append(f"| {name} | {' / '.join(f'{c:.2f}' for c in coherence)} | {sc_cell} | "
                     f"{m['mel_change']:.3f} | {m['flatness']:.4f} | {m['chroma_entropy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heldout", type=Path, default=Path("data/piano/heldout"))
    p.add_argument("--bundle", help="target what this bundle's vocoder predicts from each clip's mel")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--iters", type=int, default=96)
    p.add_argument("--fractions", default="0.25,0.5,0.75,1")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = SpectrogramConfig()
    clips = load_clips(args.heldout, args.seconds, args.clips, cfg.sample_rate)
    if args.bundle:
        from engine.api import Engine
        from engine.render import vocode
        eng = Engine.load(args.bundle, device="cpu")
        cfg = eng.bundle.spectrogram

        def target(audio):
            frames = stft_magnitude(audio, cfg).shape[-1]
            return vocode(eng.encode(audio)[None], eng.bundle, eng.vocoder, frames)[0]
    else:
        def target(audio):
            return stft_magnitude(audio, cfg)
    fractions = [float(f) for f in args.fractions.split(",") if f]
    rows = measure(clips, cfg, decoders(fractions, cfg, args.iters), target)
    source = f"{args.bundle}'s vocoder" if args.bundle else "the clip's own |STFT|"
    print(f"{len(clips)} held-out clips of {args.seconds:g} s from {args.heldout}; target: {source}; "
          f"{args.iters} fast Griffin-Lim iterations\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
