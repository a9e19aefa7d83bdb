#!/usr/bin/env bash
# Build the piano bundle (models/piano-candidate/, the default's successor) offline with our own pipeline: the piano
# corpus, a vocoder and U-Net fine-tuned from INIT (the v1 default; next time: INIT=models/piano-candidate), the
# vocoder's gain calibration, the export and the quality report beside the bundle it would replace.
# The v1 default itself (models/default/) was built by this script's version of commit c95ceea.
# Each step resumes where it stopped, so the script can be re-run after an interruption (a new machine: the steps'
# --init-from takes the bundle itself, so a later session continues from the shipped weights).
# Commands and timings of the shipped run: models/default/REPORT.md and the manifest's provenance.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/piano}
INIT=${INIT:-models/default}            # the bundle to fine-tune from (the previous default)
UNET_STEPS=${UNET_STEPS:-4000}
VOCODER_STEPS=${VOCODER_STEPS:-3000}
THREADS=${THREADS:-1}

# 1. Corpus: ~1.7 h of POP909-layout piano arrangements + music21 works on piano (FluidSynth), held-out split.
msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25

# 2. Models (small preset), fine-tuned from $INIT; resume when a run exists.
start() { [ -f "$RUN/$1/last.pt" ] && echo --resume || echo --init-from "$INIT"; }
msanii-train vocoder --data data/piano/train --preset small --out "$RUN" --steps "$VOCODER_STEPS" --lr 2e-4 \
  --threads "$THREADS" --checkpoint-every 500 --keep-checkpoints 4 $(start vocoder)
msanii-train vocoder --out "$RUN" --resume --steps $((VOCODER_STEPS + 600)) --lr 2e-5 --threads "$THREADS"
[ -f "$RUN/vocoder/calibrated.pt" ] || msanii-train calibrate-vocoder --out "$RUN" --threads "$THREADS"
msanii-train unet --data data/piano/train --preset small --out "$RUN" --steps "$UNET_STEPS" --threads "$THREADS" \
  --checkpoint-every 500 --keep-checkpoints 20 $(start unet)
python -m bench.heldout_loss --run "$RUN" --heldout data/piano/heldout --csv "$RUN/heldout.csv"

# 3. Bundle (EMA weights, float16-stored to fit the 40 MB budget) into a new folder, then the report beside the
# bundle it replaces; it becomes models/default only if the report's gates all pass.
msanii-export "$RUN" "$RUN/bundle" --vocoder "$RUN/vocoder/calibrated.pt" --compact --name msanii-daw-piano --provenance models/provenance-piano.json \
  --gl-iters 96 --overwrite
python -m bench.quality_report --bundle "$RUN/bundle" --previous "$INIT" --heldout data/piano/heldout --run "$RUN" \
  --out "$RUN/bundle/REPORT.md"
