"""How many fast Griffin-Lim iterations reach the paper's Griffin-Lim-200 spectral convergence on real music?

    python -m bench.phase_iters [--seconds 10] [--iters 8,16,24,32,48,64,100] [--bundle models/default]

Target magnitude: |STFT| of FluidSynth-rendered stereo music (bench/music.py); with --bundle, what that bundle's
vocoder makes of the music's mel instead (the magnitude a render hands to the phase stage: not an exactly
consistent spectrogram, so every method plateaus higher). Paper baseline: torchaudio's
Griffin-Lim, 200 iterations, random initial phase, momentum 0.99 (as the reference implementation). Ours:
engine.dsp.phase.fast_griffin_lim with each initial phase. Prints SC (paper eq. 1) and seconds per run.
"""
from __future__ import annotations

import engine  # noqa: F401  (first: sets passive OpenMP waiting before torch loads)

import argparse
import time

import torch

from bench.music import music_snippet
from engine.dsp import SpectrogramConfig, stft_magnitude
from engine.dsp.phase import fast_griffin_lim, griffin_lim_torchaudio, spectral_convergence


def time_iterations(magnitude: torch.Tensor, cfg: SpectrogramConfig, length: int, repeats: int = 5) -> None:
    runs = {"torchaudio": lambda n: griffin_lim_torchaudio(magnitude, cfg, n_iter=n, length=length,
                                                           generator=torch.Generator().manual_seed(0)),
            "fast": lambda n: fast_griffin_lim(magnitude, cfg, n_iter=n, init="random", length=length,
                                               generator=torch.Generator().manual_seed(0))}
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(10)
            best[name] = min(best[name], (time.perf_counter() - start) / 10)
    for name, seconds in best.items():
        print(f"{name:10s} Griffin-Lim: {seconds * 1000:.1f} ms per iteration (min of {repeats})")
    print(f"fast / torchaudio per-iteration cost: {best['fast'] / best['torchaudio']:.2f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--iters", default="8,16,24,32,48,64,100")
    p.add_argument("--inits", default="advance,random,zeros")
    p.add_argument("--paper-iters", type=int, default=200)
    p.add_argument("--paper-sc", type=float, help="skip the baseline run and use this SC (from an earlier run)")
    p.add_argument("--bundle", help="target the magnitude this bundle's vocoder predicts from the music's mel")
    p.add_argument("--timing", action="store_true", help="also time one iteration of each implementation "
                   "(min of 5 interleaved 10-iteration runs: robust to a shared machine's load spikes)")
    args = p.parse_args(argv)
    cfg = SpectrogramConfig()
    audio = torch.from_numpy(music_snippet(args.seconds, cfg.sample_rate))
    magnitude = stft_magnitude(audio, cfg)
    length = audio.shape[-1]
    if args.bundle:
        from engine.api import Engine
        from engine.render import vocode
        engine = Engine.load(args.bundle, device="cpu")
        magnitude = vocode(engine.encode(audio)[None], engine.bundle, engine.vocoder, magnitude.shape[-1])[0]
        print(f"target: the vocoder of {engine.name} on the music's mel")
    print(f"music: {args.seconds:g} s stereo, {magnitude.shape[-1]} frames; torch threads {torch.get_num_threads()}")
    if args.timing:
        time_iterations(magnitude, cfg, length)
    start = time.perf_counter()
    if args.paper_sc is None:
        paper = griffin_lim_torchaudio(magnitude, cfg, n_iter=args.paper_iters, length=length,
                                       generator=torch.Generator().manual_seed(0))
        paper_sc = spectral_convergence(paper, magnitude, cfg)
        print(f"paper torchaudio GL-{args.paper_iters} (random init): SC {paper_sc:.4f}  "
              f"{time.perf_counter() - start:.1f} s")
    else:
        paper_sc = args.paper_sc
        print(f"paper SC given: {paper_sc:.4f}")
    for init in args.inits.split(","):
        reached = None
        for n in (int(x) for x in args.iters.split(",")):
            start = time.perf_counter()
            est = fast_griffin_lim(magnitude, cfg, n_iter=n, init=init, length=length,
                                   generator=torch.Generator().manual_seed(0))
            sc = spectral_convergence(est, magnitude, cfg)
            if reached is None and sc <= paper_sc:
                reached = n
            print(f"fast GL init={init:8s} iters={n:4d}: SC {sc:.4f}  {time.perf_counter() - start:.1f} s"
                  + ("  <= paper" if sc <= paper_sc else ""))
        print(f"  init={init}: paper SC reached at {reached} iterations" if reached else
              f"  init={init}: paper SC not reached within {args.iters}")


if __name__ == "__main__":
    main()
