#!/usr/bin/env bash
# Rebuild the shipped default bundle (models/default/) from nothing, offline, with our own pipeline.
# Each step resumes where it stopped, so the script can be re-run after an interruption.
# Commands and timings of the shipped run: models/default/REPORT.md and the manifest's provenance.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/default}
UNET_STEPS=${UNET_STEPS:-20000}
VOCODER_STEPS=${VOCODER_STEPS:-14000}  # lr 1e-3: measured 2x faster than the paper's 2e-4 on this budget
THREADS=${THREADS:-1}

# 1. Corpus: ~1 h of procedural pop + music21 pieces rendered with FluidSynth (GM soundfont), held-out split.
msanii-train make-corpus data/corpus --minutes 60 --seed 0 --jobs 1

# 2. Models (small preset). Resume when a run exists.
resume() { [ -f "$RUN/$1/last.pt" ] && echo --resume || true; }
msanii-train vocoder --data data/corpus/train --preset small --out "$RUN" --steps "$VOCODER_STEPS" --lr 1e-3 --threads "$THREADS" $(resume vocoder)
# Anneal: at 1e-3 the held-out SC jumps by +-0.05 between checkpoints; 3 k steps at 5e-5 then 1 k at 1e-5 settle it.
msanii-train vocoder --out "$RUN" --resume --steps $((VOCODER_STEPS + 3000)) --lr 5e-5 --threads "$THREADS"
msanii-train vocoder --out "$RUN" --resume --steps $((VOCODER_STEPS + 4000)) --lr 1e-5 --threads "$THREADS"
msanii-train unet --data data/corpus/train --preset small --out "$RUN" --steps "$UNET_STEPS" --threads "$THREADS" $(resume unet)

# 3. Bundle (EMA weights) with fp16-stored weights to fit the 40 MB budget, then the quality report.
# --gl-iters 96: the fewest Griffin-Lim iterations that reach torchaudio GL-200's SC on this vocoder's output
# (python -m bench.phase_iters --bundle models/default; 80 suffice on true spectrograms).
msanii-export "$RUN" models/default --compact --name msanii-daw-default --provenance models/provenance.json --gl-iters 96 --overwrite
python -m bench.quality_report --bundle models/default --heldout data/corpus/heldout --out models/default/REPORT.md
