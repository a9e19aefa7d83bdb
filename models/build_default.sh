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
#   -> piano candidate 5 (this script's version of commit 5a5905e, INIT = candidate 4: 10,028 more steps in
#      runs/piano-v6, and the vocoder fine-tuned from candidate 4's with the frozen scaler, 30,000 steps)
#   -> piano candidate 6 (this version, INIT = candidate 5): the U-Net learns to follow a beat grid
#      (--beat-conditioning, docs/architecture.md "Beat grid"): STEPS1 steps in RUN1, then STEPS more in RUN from
#      RUN1's last.pt; the vocoder run continued to VOCODER_STEPS, then calibrated. Stage 1 ran with the sidecars
#      of commit 42bc60c, whose music21 windows (10 % of the audio) had anti-phase grids; stage 2 with the
#      note-aligned ones (bdd74f4). This script writes today's sidecars for both, so a rebuild differs in stage 1.
# An earlier candidate comes back from git for a faithful rebuild, e.g. candidate 3:
#   mkdir -p /tmp/candidate3 && git archive a29f974 models/piano-candidate | tar -x -C /tmp/candidate3 --strip-components=2
# The next session continues with INIT=models/piano-candidate (v-prediction, frozen scaler, beat-conditioned) and
# new RUN1/RUN/VOCODER_RUN folders.
# Each stage resumes where it stopped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN1=${RUN1:-runs/piano-beat}           # U-Net stage 1: beat-conditioned, from INIT
RUN=${RUN:-runs/piano-beat2}            # U-Net stage 2: from RUN1's last checkpoint (the bundle's U-Net)
VOCODER_RUN=${VOCODER_RUN:-runs/voc-frozen}  # the vocoder fine-tune
INIT=${INIT:-}                          # the bundle to fine-tune the U-Net from (default: candidate 5, from git)
VOCODER_INIT=${VOCODER_INIT:-}          # the bundle the vocoder run starts from (candidate 4: see below)
PREVIOUS=${PREVIOUS:-models/default}    # the bundle the report compares against (the one it would replace)
STEPS1=${STEPS1:-2392}                  # 2 x 512 frames (11.9 s)
STEPS=${STEPS:-5091}
VOCODER_STEPS=${VOCODER_STEPS:-64000}   # 8 x 64 frames (1.5 s)
THREADS=${THREADS:-1}

# 1. Corpus: ~1.7 h of POP909-layout piano arrangements + music21 works on piano (FluidSynth), held-out split.
[ -f data/piano/corpus.json ] || msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25

# 2. U-Net (small preset), re-targeted to v-prediction: an epsilon model cannot state the data's mean spectrum near
# pure noise, where sampling starts (models/README.md), and its clips came out flat-spectred. Crops of 512 frames
# (11.9 s) at batch 2: longer than the README's 10 s render.
# The frozen scaler (training.trainer): statistics fitted once on the corpus, so the bundle decodes in the model space
# the U-Net learned; with batch statistics at 2 crops per batch clips came out ~3 dB quiet (bench/RESULTS.md, "Scaler").
# Beat conditioning: every piece's beat and downbeat times (from its MIDI) beside its audio, and a zero-initialised
# projection of the grid into the U-Net, so stage 1 begins as INIT; 20 % of crops are shown without a grid.
msanii-train beat-grid data/piano
if [ ! -f "$RUN1/unet/last.pt" ] && [ -z "$INIT" ]; then
  INIT=/tmp/msanii-candidate5
  mkdir -p "$INIT" && git archive 5a5905e models/piano-candidate | tar -x -C "$INIT" --strip-components=2
fi
start() { [ -f "$2/$1/last.pt" ] && echo --resume || echo --init-from "$3" --prediction-type v_prediction --scaler frozen \
  --beat-conditioning; }
unet() { msanii-train unet --data data/piano/train --preset small --out "$1" --steps "$2" --crop-frames 512 \
  --batch-size 2 --threads "$THREADS" --checkpoint-every 500 --keep-checkpoints 30 --no-progress $(start unet "$1" "$3"); }
unet "$RUN1" "$STEPS1" "$INIT"
unet "$RUN" "$STEPS" "$RUN1/unet/last.pt"

# 3. Vocoder, fine-tuned from candidate 4's with the frozen scaler (its input statistics fixed, as the bundle decodes
# with them), then its per-bin gain calibrated: held-out SC 0.209 -> 0.122 at 30k steps, 0.110 at 64k
# (bench/RESULTS.md, "Vocoder").
if [ ! -f "$VOCODER_RUN/vocoder/last.pt" ] && [ -z "$VOCODER_INIT" ]; then
  VOCODER_INIT=/tmp/msanii-candidate4
  mkdir -p "$VOCODER_INIT" && git archive faa5aa2 models/piano-candidate | tar -x -C "$VOCODER_INIT" --strip-components=2
fi
msanii-train vocoder --data data/piano/train --preset small --out "$VOCODER_RUN" --steps "$VOCODER_STEPS" \
  --threads "$THREADS" --checkpoint-every 1000 --no-progress \
  $( [ -f "$VOCODER_RUN/vocoder/last.pt" ] && echo --resume || echo --init-from "$VOCODER_INIT" --scaler frozen )
# a calibration is never overwritten: redo it only when the vocoder trained on after it
if [ ! "$VOCODER_RUN/vocoder/calibrated.pt" -nt "$VOCODER_RUN/vocoder/last.pt" ]; then
  rm -f "$VOCODER_RUN/vocoder/calibrated.pt"
  msanii-train calibrate-vocoder --out "$VOCODER_RUN" --threads "$THREADS"
fi

# 4. Bundle (EMA weights, float16-stored to fit the 40 MB budget) into a new folder, then the report beside the
# bundle it would replace; it becomes models/default only if the report's gates all pass.
msanii-export - "$RUN/bundle" --unet "$RUN/unet/last.pt" --vocoder "$VOCODER_RUN/vocoder/calibrated.pt" --compact \
  --name msanii-daw-piano --provenance models/provenance-piano.json --gl-iters 96 --default-bpm 100 --overwrite
python -m bench.quality_report --bundle "$RUN/bundle" --previous "$PREVIOUS" --heldout data/piano/heldout \
  --run "$RUN" --out "$RUN/bundle/REPORT.md" --clips 10 --region-clips 2
