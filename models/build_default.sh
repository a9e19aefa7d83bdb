#!/usr/bin/env bash
# Build the default bundle (models/default/: the piano model since 2026-12-07) offline with our own pipeline: the
# piano corpus, the U-Net fine-tuned from INIT as a v-prediction model, the vocoder fine-tuned from VOC_INIT, the
# export, the quality report beside the bundle it replaces, and (last step) its installation as models/default.
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
#   -> piano candidate 6 (this script's version of commit 0f7e7f7, INIT = candidate 5): the U-Net learns to follow a
#      beat grid (--beat-conditioning, docs/architecture.md "Beat grid"): 2,392 steps in runs/piano-beat, then 5,091
#      more in runs/piano-beat2; the vocoder run continued to 64,000 steps, then calibrated.
#   -> piano candidate 7 (this script's version of commit 7176d98, INIT = candidate 6 of commit e175da6): STEPS1 more
#      beat-conditioned steps at lr 2e-4 with the EMA averaging from the first step (--ema-start 0), then on to STEPS
#      at lr LR2 (--resume --lr); the vocoder is candidate 6's, taken from its bundle.
#   -> piano candidate 8 (this script's version of commit 32045b8): the same run continued in RUN2 (a copy of RUN's
#      last checkpoint, optimiser and EMA included) at lr LR3 to STEPS3; rendered with the stochastic sampler on
#      log-SNR steps from a floor, beat guidance on the noisier steps and fewer phase iterations (--sampler sde
#      --steps 12 --beat-guidance 3 --beat-guidance-from 0.3 --gl-iters 64; bench/RESULTS.md, 2026-12-07). Judged
#      also against a second corpus the model never trained on (data/piano-s1) with calibrated gates
#      (bench/reference.py).
#   -> piano candidate 9 (this script's version of commit fa10cf7): the same run continued in RUN3 (a copy of RUN2's
#      last checkpoint) at LR3 to STEPS4. Its checkpoints record each training piece's tempo, metre and length, which the
#      export writes as the manifest's tempo prior: a generation that names no tempo follows one drawn by its seed
#      (bench/RESULTS.md, "Tempo drawn from the corpus"); beat guidance 3.5 (mel change +0.01 on two seed sets).
#   -> piano candidate 10 (this version): candidate 9's U-Net (RUN3 at STEPS4, exported from CKPT) with the vocoder
#      fine-tuned VOC_STEPS more steps from candidate 9's with the paper's loss in VOC_RUN (held-out SC 0.110 -> 0.103)
#      and calibrated again. Judged on 48 seeds: 24 still left the issue's chroma gate to the draw (bench/RESULTS.md,
#      "Where the smooth mel change comes from"). RUN3 continued 8,000 more steps (runs/piano-beat6) was tried
#      there and not shipped; so were that run taken on to 48,000 at lr 3e-5 (runs/piano-anneal) and RUN3 taken on
#      at lr 3e-5 with --oversample 'm21-monteverdi*=0.4' (runs/piano-bal): both lower chroma entropy
#      (bench/RESULTS.md, "Where the chroma shortfall lies"); and RUN3 taken on 3,500 steps on a corpus made with
#      --music21-draw composers (data/piano-comp, runs/piano-comp): chroma kept, not yet a better set; that run
#      taken on to 43,495, a copy of its step 38,000 drawing the music21 works 2x (--oversample 'm21-*=2',
#      runs/piano-comp-m21) to 48,006, and EMA averages of several checkpoints: none better on two sets of 48 seeds
#      (bench/RESULTS.md, 2026-12-07, fifth session).
#      A U-Net trained from scratch on data/piano-comp (runs/piano-comp-scratch, 27,000 steps) plays the chorale-like
#      clips with more pitch classes but jumps more; not shipped (bench/RESULTS.md, sixth session).
# An earlier candidate comes back from git for a faithful rebuild, e.g. candidate 3:
#   mkdir -p /tmp/candidate3 && git archive a29f974 models/piano-candidate | tar -x -C /tmp/candidate3 --strip-components=2
# and the v1 default (band corpus) likewise: git archive 4345ecd models/default.
# The next session continues with INIT=models/default (candidate 10: v-prediction, frozen scaler, beat-conditioned)
# and a new RUN folder.
# Each stage resumes where it stopped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/piano-beat3}            # the U-Net run (the bundle's U-Net is its last checkpoint)
INIT=${INIT:-}                          # the bundle to fine-tune the U-Net from (default: candidate 6, from git)
PREVIOUS=${PREVIOUS:-models/default}    # the bundle the report compares against (the one it would replace)
STEPS1=${STEPS1:-10005}                # 2 x 512 frames (11.9 s) at lr 2e-4
STEPS=${STEPS:-13008}                  # total, the rest at LR2
LR2=${LR2:-5e-5}
RUN2=${RUN2:-runs/piano-beat4}          # stage 3: RUN continued at LR3 to STEPS3
STEPS3=${STEPS3:-23000}
LR3=${LR3:-1e-4}
RUN3=${RUN3:-runs/piano-beat5}          # stage 4: RUN2 continued at LR3 to STEPS4
STEPS4=${STEPS4:-33000}
CKPT=${CKPT:-last.pt}                   # the checkpoint of RUN3 the bundle is exported from
BUNDLE=${BUNDLE:-runs/cand10/bundle}    # the candidate bundle (its REPORT.md beside it)
VOC_RUN=${VOC_RUN:-runs/voc-paper}      # the vocoder fine-tuned from VOC_INIT (default: candidate 9, from git)
VOC_INIT=${VOC_INIT:-}
VOC_STEPS=${VOC_STEPS:-20000}
THREADS=${THREADS:-1}

# 1. Corpus: ~1.7 h of POP909-layout piano arrangements + music21 works on piano (FluidSynth), held-out split.
[ -f data/piano/corpus.json ] || msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25
# A second corpus of the same kind, never trained on (new pop songs, other music21 works): the larger reference of
# the report's calibrated gates (bench/reference.py leaves out any piece of data/piano's train split).
[ -f data/piano-s1/corpus.json ] || msanii-train make-corpus data/piano-s1 --minutes 60 --seed 1 --jobs 2 --music21-fraction 0.25

# 2. U-Net (small preset), re-targeted to v-prediction: an epsilon model cannot state the data's mean spectrum near
# pure noise, where sampling starts (models/README.md), and its clips came out flat-spectred. Crops of 512 frames
# (11.9 s) at batch 2: longer than the README's 10 s render.
# The frozen scaler (training.trainer): statistics fitted once on the corpus, so the bundle decodes in the model space
# the U-Net learned; with batch statistics at 2 crops per batch clips came out ~3 dB quiet (bench/RESULTS.md, "Scaler").
# Beat conditioning: every piece's beat and downbeat times (from its MIDI) beside its audio, and a zero-initialised
# projection of the grid into the U-Net, so stage 1 begins as INIT; 20 % of crops are shown without a grid.
msanii-train beat-grid data/piano
if [ -z "$INIT" ]; then
  mkdir -p /tmp/msanii-candidate6 && git archive e175da6 models/piano-candidate | tar -x -C /tmp/msanii-candidate6 --strip-components=2
  INIT=/tmp/msanii-candidate6
fi
common="--preset small --crop-frames 512 --batch-size 2 --threads $THREADS --checkpoint-every 500 --keep-checkpoints 40 --no-progress"
if [ ! -f "$RUN/unet/last.pt" ]; then
  msanii-train unet --data data/piano/train --out "$RUN" --steps "$STEPS1" $common --init-from "$INIT" \
    --prediction-type v_prediction --scaler frozen --beat-conditioning --ema-start 0
fi
at() { tail -n 1 "$RUN/unet/losses.csv" | cut -d, -f1; }
# finish stage 1 after an interruption
if [ "$(at)" -lt "$STEPS1" ]; then msanii-train unet --out "$RUN" --steps "$STEPS1" $common --resume; fi
msanii-train unet --out "$RUN" --steps "$STEPS" $common --resume --lr "$LR2"
# stage 3 (candidate 8): the lower rate had made the sustain smoother than real; back to LR3, on a copy of RUN
if [ ! -f "$RUN2/unet/last.pt" ]; then
  mkdir -p "$RUN2/unet" && cp "$RUN/unet/last.pt" "$RUN/unet/losses.csv" "$RUN2/unet/"
fi
msanii-train unet --out "$RUN2" --steps "$STEPS3" $common --resume --lr "$LR3"
# stage 4 (candidate 9): on to STEPS4 in a copy; resuming re-reads the data, so the checkpoints record each piece's
# tempo, metre and length (the manifest's tempo prior)
if [ ! -f "$RUN3/unet/last.pt" ]; then
  mkdir -p "$RUN3/unet" && cp "$RUN2/unet/last.pt" "$RUN2/unet/losses.csv" "$RUN3/unet/"
fi
msanii-train unet --out "$RUN3" --steps "$STEPS4" $common --resume --lr "$LR3"
# The vocoder (candidate 10): VOC_STEPS more steps of the paper's loss from candidate 9's (itself candidate 6's, 64,000
# steps), then the per-bin level calibration; the bundle carries the calibrated copy.
if [ -z "$VOC_INIT" ]; then
  mkdir -p /tmp/msanii-candidate9 && git archive fa10cf7 models/default | tar -x -C /tmp/msanii-candidate9 --strip-components=2
  VOC_INIT=/tmp/msanii-candidate9
fi
voc="--steps $VOC_STEPS --threads $THREADS --checkpoint-every 2000 --no-progress"
if [ -f "$VOC_RUN/vocoder/last.pt" ]; then
  msanii-train vocoder --out "$VOC_RUN" --resume $voc
else
  msanii-train vocoder --data data/piano/train --init-from "$VOC_INIT" --scaler frozen --out "$VOC_RUN" --lr 1e-4 $voc
fi
# calibrate-vocoder never overwrites: drop a calibration older than the run's last checkpoint
if [ -f "$VOC_RUN/vocoder/calibrated.pt" ] && [ "$VOC_RUN/vocoder/last.pt" -nt "$VOC_RUN/vocoder/calibrated.pt" ]; then
  rm "$VOC_RUN/vocoder/calibrated.pt"
fi
[ -f "$VOC_RUN/vocoder/calibrated.pt" ] || msanii-train calibrate-vocoder --out "$VOC_RUN" --threads "$THREADS"

# 3. Bundle (EMA weights, float16-stored to fit the 40 MB budget; the calibrated vocoder of VOC_RUN) into a new folder
# with its render defaults, then the report beside the bundle it would replace: the issue's gates against the
# held-out split, and the calibrated gates against it and the second corpus (bench/reference.py).
msanii-export - "$BUNDLE" --unet "$RUN3/unet/$CKPT" --vocoder "$VOC_RUN/vocoder/calibrated.pt" --compact \
  --name msanii-daw-piano --provenance models/provenance-piano.json --gl-iters 64 --default-bpm 100 \
  --sampler sde --steps 12 --beat-guidance 3.5 --beat-guidance-from 0.3 --overwrite
python -m bench.heldout_loss --run "$RUN3" --heldout data/piano/heldout --crops 16 --timesteps 8 --every 2 \
  --csv "$RUN3/heldout.csv"
# 48 seeds: 12 clips judged a variant by the draw of its seeds as much as by its sound, and 24 still left the chroma
# gate to the draw. Two sets of 48 still put the same model 0.01 apart in chroma and 0.002 in jump rate, about the
# distance between candidates, so a candidate is also judged on seeds 48-95 (bench/RESULTS.md, 2026-12-07, fifth
# session). Not 96 in one set: the calibrated gates judge at most half the reference's 103 clips at once.
python -m bench.quality_report --bundle "$BUNDLE" --previous "$PREVIOUS" --heldout data/piano/heldout \
  --reference data/piano-s1 --run "$RUN3" --out "$BUNDLE/REPORT.md" --clips 10 --region-clips 4 \
  --seeds $(seq -s ' ' 0 47)
python -m bench.musicality --real data/piano/heldout --bundle "$BUNDLE" --bundle "$PREVIOUS" --clips 10 \
  --reference data/piano-s1 --training-corpus data/piano/corpus.json --seeds $(seq -s ' ' 48 95) \
  | tee "$BUNDLE/seeds-48-95.txt"

# 4. Install it as the default when REPORT.md's gates pass, it renders as fast as the previous default and its
# region tasks are no worse. Candidates 8 and 9 were installed on 2026-12-07 on the calibrated gates (24 seeds).
# Candidate 10 was installed the same day on the issue's own half-vs-half gates (48 seeds, where candidate 9
# misses chroma by 0.002). On 48 seeds the calibrated gates fail for both, by the same hair; REPORT.md.
# Pass INSTALL=1 to do it here.
if [ "${INSTALL:-0}" = 1 ]; then
  rm -rf models/default.new && cp -r "$BUNDLE" models/default.new
  rm -rf models/default && mv models/default.new models/default
fi
