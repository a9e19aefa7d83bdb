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
#   -> piano candidate 3 (this script's version of commit a29f974, INIT = candidate 2: 8,578 steps of 2 x 512 as
#      v-prediction, Appendix A's batch-statistics scaler)
#   -> piano candidate 4 (this script's version of commit 7d4e55f, INIT = candidate 3: 1,017 steps as before in
#      runs/piano-v4, then 3,515 more from runs/piano-v4/unet/last.pt with the frozen scaler, in runs/piano-v5)
#   -> piano candidate 5 (this version, INIT = candidate 4: STEPS more steps in runs/piano-v6, and the vocoder
#      fine-tuned from INIT's with the frozen scaler, VOCODER_STEPS steps in runs/voc-frozen, then calibrated).
# An earlier candidate comes back from git for a faithful rebuild, e.g. candidate 3:
#   mkdir -p /tmp/candidate3 && git archive a29f974 models/piano-candidate | tar -x -C /tmp/candidate3 --strip-components=2
# The next session continues with INIT=models/piano-candidate (v-prediction, frozen scaler: the flags then refit
# the scaler on the corpus: the same seed and data give the statistics the bundle already has).
# The U-Net step resumes where it stopped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/piano-v6}               # the v-prediction U-Net stage with the frozen scaler
VOCODER_RUN=${VOCODER_RUN:-runs/voc-frozen}  # the vocoder fine-tune
INIT=${INIT:-models/piano-candidate}    # the bundle to fine-tune from (U-Net and vocoder)
PREVIOUS=${PREVIOUS:-models/default}    # the bundle the report compares against (the one it would replace)
STEPS=${STEPS:-10028}                   # 2 x 512 frames (11.9 s)
VOCODER_STEPS=${VOCODER_STEPS:-30000}    # 8 x 64 frames (1.5 s)
THREADS=${THREADS:-1}

# 1. Corpus: ~1.7 h of POP909-layout piano arrangements + music21 works on piano (FluidSynth), held-out split.
[ -f data/piano/corpus.json ] || msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25

# 2. U-Net (small preset), re-targeted to v-prediction: an epsilon model cannot state the data's mean spectrum near
# pure noise, where sampling starts (models/README.md), and its clips came out flat-spectred. Crops of 512 frames
# (11.9 s) at batch 2: longer than the README's 10 s render.
# The frozen scaler (training.trainer): statistics fitted once on the corpus, so the bundle decodes in the model space
# the U-Net learned; with batch statistics at 2 crops per batch clips came out ~3 dB quiet (bench/RESULTS.md, "Scaler").
start() { [ -f "$2/$1/last.pt" ] && echo --resume || echo --init-from "$3" --prediction-type v_prediction --scaler frozen; }
msanii-train unet --data data/piano/train --preset small --out "$RUN" --steps "$STEPS" --crop-frames 512 \
  --batch-size 2 --threads "$THREADS" --checkpoint-every 500 --keep-checkpoints 30 --no-progress \
  $(start unet "$RUN" "$INIT")
python -m bench.heldout_loss --run "$RUN" --heldout data/piano/heldout --every 4 --csv "$RUN/heldout.csv"

# 3. Vocoder, fine-tuned from INIT's with the frozen scaler (its input statistics fixed, as the bundle decodes with
# them), then its per-bin gain calibrated: held-out SC 0.209 -> 0.122 (bench/RESULTS.md, "Vocoder").
msanii-train vocoder --data data/piano/train --preset small --out "$VOCODER_RUN" --steps "$VOCODER_STEPS" \
  --threads "$THREADS" --checkpoint-every 1000 --no-progress \
  $( [ -f "$VOCODER_RUN/vocoder/last.pt" ] && echo --resume || echo --init-from "$INIT" --scaler frozen )
# a calibration is never overwritten: redo it only when the vocoder trained on after it
if [ ! "$VOCODER_RUN/vocoder/calibrated.pt" -nt "$VOCODER_RUN/vocoder/last.pt" ]; then
  rm -f "$VOCODER_RUN/vocoder/calibrated.pt"
  msanii-train calibrate-vocoder --out "$VOCODER_RUN" --threads "$THREADS"
fi

# 4. Bundle (EMA weights, float16-stored to fit the 40 MB budget) into a new folder, then the report beside the
# bundle it would replace; it becomes models/default only if the report's gates all pass.
msanii-export - "$RUN/bundle" --unet "$RUN/unet/last.pt" --vocoder "$VOCODER_RUN/vocoder/calibrated.pt" --compact \
  --name msanii-daw-piano --provenance models/provenance-piano.json --gl-iters 96 --overwrite
cp "$RUN/heldout.csv" "$RUN/bundle/heldout-loss.csv"
python -m bench.quality_report --bundle "$RUN/bundle" --previous "$PREVIOUS" --heldout data/piano/heldout \
  --run "$RUN" --out "$RUN/bundle/REPORT.md" --clips 10 --region-clips 2
