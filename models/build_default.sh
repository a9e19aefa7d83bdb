#!/usr/bin/env bash
# Build the piano bundle (models/piano-candidate/, the default's successor) offline with our own pipeline: the piano
# corpus, the U-Net fine-tuned from INIT as a v-prediction model, the export (the vocoder carried over from INIT) and
# the quality report beside the bundle it would replace.
#
# Lineage (each step a fine-tune of the one before, so a new machine continues from committed weights, not runs/):
#   v1 default (models/default/, built by this script's version of commit c95ceea: band corpus, 11,735 steps)
#   -> piano candidate 1 (this script's version of commit 6bca4fd: 4,011 steps of 4 x 256 frames)
#   -> piano candidate 2 (this script's version of commit e5062b5: 1,125 steps of 4 x 256, then 8,007 of 2 x 512,
#      and the vocoder fine-tuned 600 steps and calibrated)
#   -> piano candidate 3 (this version, INIT = candidate 2: 8,578 steps of 2 x 512 as v-prediction).
# Candidate 2 comes back from git for a faithful rebuild:
#   mkdir -p /tmp/candidate2 && git archive e5062b5 models/piano-candidate | tar -x -C /tmp/candidate2 --strip-components=2
#   INIT=/tmp/candidate2 bash models/build_default.sh
# The next session continues with INIT=models/piano-candidate (already v-prediction; the flag then changes nothing).
# The U-Net step resumes where it stopped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/piano-v}                # the v-prediction U-Net stage
INIT=${INIT:-models/piano-candidate}    # the bundle to fine-tune from (and whose vocoder is kept)
PREVIOUS=${PREVIOUS:-models/default}    # the bundle the report compares against (the one it would replace)
STEPS=${STEPS:-8578}                    # 2 x 512 frames (11.9 s)
THREADS=${THREADS:-1}

# 1. Corpus: ~1.7 h of POP909-layout piano arrangements + music21 works on piano (FluidSynth), held-out split.
[ -f data/piano/corpus.json ] || msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25

# 2. U-Net (small preset), re-targeted to v-prediction: an epsilon model cannot state the data's mean spectrum near
# pure noise, where sampling starts (models/README.md), and its clips came out flat-spectred. Crops of 512 frames
# (11.9 s) at batch 2: longer than the README's 10 s render.
start() { [ -f "$2/$1/last.pt" ] && echo --resume || echo --init-from "$3" --prediction-type v_prediction; }
msanii-train unet --data data/piano/train --preset small --out "$RUN" --steps "$STEPS" --crop-frames 512 \
  --batch-size 2 --threads "$THREADS" --checkpoint-every 500 --keep-checkpoints 30 --no-progress \
  $(start unet "$RUN" "$INIT")
python -m bench.heldout_loss --run "$RUN" --heldout data/piano/heldout --every 4 --csv "$RUN/heldout.csv"

# 3. Bundle (EMA weights, float16-stored to fit the 40 MB budget; INIT's vocoder unchanged) into a new folder, then
# the report beside the bundle it would replace; it becomes models/default only if the report's gates all pass.
msanii-export - "$RUN/bundle" --unet "$RUN/unet/last.pt" --vocoder "$INIT" --compact \
  --name msanii-daw-piano --provenance models/provenance-piano.json --gl-iters 96 --overwrite
cp "$RUN/heldout.csv" "$RUN/bundle/heldout-loss.csv"
python -m bench.quality_report --bundle "$RUN/bundle" --previous "$PREVIOUS" --heldout data/piano/heldout \
  --run "$RUN" --out "$RUN/bundle/REPORT.md" --clips 10 --region-clips 2
