#!/usr/bin/env bash
# Build the default bundle (models/default/: piano candidate 11 since 2026-12-07) offline with our own pipeline: the
# composer-drawn piano corpus, the U-Net trained from scratch on it, candidate 10's vocoder, the export, the quality
# report beside the bundle it replaces, and (last step) its installation as models/default.
#
# Lineage. Candidates 1-10 were a chain of fine-tunes from the v1 default (band corpus); this script's version of
# commit 07cf142 builds candidate 10 and lists them all (restore any with git archive, e.g.
#   mkdir -p /tmp/candidate10 && git archive 07cf142 models/default | tar -x -C /tmp/candidate10 --strip-components=2).
# Candidate 11 (this version) leaves that chain: a U-Net trained from scratch on data/piano-comp (music21 works drawn
# composer by composer, --music21-draw composers; the same pop songs) in RUN, at lr 2e-4 to STEPS1, 1e-4 to STEPS2,
# 5e-5 to STEPS3; the bundle is its checkpoint CKPT (steps 30,000-40,000 judged on two sets of 48 seeds, 36,000 the
# best), rendered with beat guidance 2 (3.5 for candidate 10; 1-1.5 smoothed the mel below real, 3.5 jumped more),
# with candidate 10's vocoder (runs/voc-paper, trained on data/piano/train: the same pop songs). bench/RESULTS.md,
# 2026-12-07, sixth and seventh sessions.
# The run's own stages ran with --threads 1 to step 2,029, then --threads 2, paused (kill -STOP) while candidates were
# judged; a rebuild with other thread counts trains the same recipe, not bit-identical weights.
# Each stage resumes where it stopped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/piano-comp-scratch}     # the U-Net run, from scratch
STEPS1=${STEPS1:-20072}                 # 2 x 512 frames (11.9 s) at lr 2e-4
STEPS2=${STEPS2:-27022}                 # then lr 1e-4
STEPS3=${STEPS3:-40000}                 # then lr 5e-5
CKPT=${CKPT:-step-0036000.pt}           # the checkpoint of RUN the bundle is exported from
PREVIOUS=${PREVIOUS:-models/default}    # the bundle the report compares against (the one it would replace)
BUNDLE=${BUNDLE:-runs/cand11/bundle}    # the candidate bundle (its REPORT.md beside it)
VOCODER=${VOCODER:-runs/voc-paper/vocoder/calibrated.pt}  # candidate 10's calibrated vocoder (else: from git)
THREADS=${THREADS:-2}

# 1. Corpora (FluidSynth, 44.1 kHz stereo, held-out splits). data/piano-comp is the training corpus: ~1.7 h of
# POP909-layout piano arrangements + music21 works drawn composer by composer. data/piano is the first corpus (the
# same pop songs, music21 works drawn piece by piece): its held-out split is the issue's; data/piano-s1 (another seed,
# never trained on) joins it as the larger reference of the calibrated gates (bench/reference.py).
[ -f data/piano-comp/corpus.json ] || msanii-train make-corpus data/piano-comp --minutes 100 --seed 0 --jobs 2 \
  --music21-fraction 0.25 --music21-draw composers
[ -f data/piano/corpus.json ] || msanii-train make-corpus data/piano --minutes 100 --seed 0 --jobs 2 --music21-fraction 0.25
[ -f data/piano-s1/corpus.json ] || msanii-train make-corpus data/piano-s1 --minutes 60 --seed 1 --jobs 2 --music21-fraction 0.25
msanii-train beat-grid data/piano-comp

# 2. U-Net (small preset) from scratch: v-prediction (an epsilon model cannot state the data's mean spectrum near pure
# noise, where sampling starts; models/README.md), the frozen scaler (statistics fitted once, as inference uses them;
# bench/RESULTS.md, "Scaler"), beat conditioning (each piece's beat grid from its MIDI; 20 % of crops without one).
# Crops of 512 frames (11.9 s) at batch 2: longer than the README's 10 s render. Every 1,000 steps a checkpoint
# (233 MB each: 9 GB for the run; CKPT must be kept).
common="--threads $THREADS --checkpoint-every 1000 --no-progress"
if [ ! -f "$RUN/unet/last.pt" ]; then
  msanii-train unet --data data/piano-comp/train --preset small --out "$RUN" --steps "$STEPS1" --crop-frames 512 \
    --batch-size 2 --prediction-type v_prediction --scaler frozen --beat-conditioning $common
fi
at() { tail -n 1 "$RUN/unet/losses.csv" | cut -d, -f1; }
if [ "$(at)" -lt "$STEPS1" ]; then msanii-train unet --out "$RUN" --steps "$STEPS1" --resume $common; fi
if [ "$(at)" -lt "$STEPS2" ]; then msanii-train unet --out "$RUN" --steps "$STEPS2" --resume --lr 1e-4 $common; fi
if [ "$(at)" -lt "$STEPS3" ]; then msanii-train unet --out "$RUN" --steps "$STEPS3" --resume --lr 5e-5 $common; fi

# 3. The vocoder: candidate 10's (models/provenance-piano.json: 84,000 steps with the frozen scaler on data/piano,
# calibrated per bin). Without its run here, its bundle from git carries it over unchanged.
if [ ! -f "$VOCODER" ]; then
  mkdir -p /tmp/msanii-candidate10 && git archive 07cf142 models/default | tar -x -C /tmp/msanii-candidate10 --strip-components=2
  VOCODER=/tmp/msanii-candidate10
fi

# 4. Bundle (EMA weights, float16-stored to fit the 40 MB budget) into a new folder with its render defaults, then
# the report beside the bundle it would replace: the issue's gates against data/piano's held-out split, and the
# calibrated gates against it and data/piano-s1. 48 seeds, and two more sets (48-95, 96-143): sets put one model
# 0.01 apart in chroma and 0.002 in jump rate, about the distance between candidates (bench/RESULTS.md, fifth
# session), and each set of candidate 11 fails a different one of the issue's gates (eighth session).
# The held-out denoising loss of the run's checkpoints (64 crops of its own held-out split x 8 timesteps; ~70 s per
# checkpoint on one core): REPORT.md's curve.
[ -f "$RUN/heldout.csv" ] || python -m bench.heldout_loss --run "$RUN" --heldout data/piano-comp/heldout --crops 64 \
  --timesteps 8 --csv "$RUN/heldout.csv"
msanii-export - "$BUNDLE" --unet "$RUN/unet/$CKPT" --vocoder "$VOCODER" --compact \
  --name msanii-daw-piano --provenance models/provenance-piano-comp.json --gl-iters 64 --default-bpm 100 \
  --sampler sde --steps 12 --beat-guidance 2 --beat-guidance-from 0.3 --overwrite
python -m bench.quality_report --bundle "$BUNDLE" --previous "$PREVIOUS" --heldout data/piano/heldout \
  --reference data/piano-s1 --training-corpus data/piano-comp/corpus.json --run "$RUN" --out "$BUNDLE/REPORT.md" \
  --clips 10 --region-clips 4 --seeds $(seq -s ' ' 0 47)
python -m bench.musicality --real data/piano/heldout --bundle "$BUNDLE" --bundle "$PREVIOUS" --clips 10 \
  --reference data/piano-s1 --training-corpus data/piano-comp/corpus.json --seeds $(seq -s ' ' 48 95) \
  | tee "$BUNDLE/seeds-48-95.txt"
python -m bench.musicality --real data/piano/heldout --bundle "$BUNDLE" --bundle "$PREVIOUS" --clips 10 \
  --reference data/piano-s1 --training-corpus data/piano-comp/corpus.json --seeds $(seq -s ' ' 96 143) \
  | tee "$BUNDLE/seeds-96-143.txt"

# 5. Install it as the default when its gates pass, it renders as fast as the previous default and its region tasks
# are no worse. Candidate 11 was installed on 2026-12-07 on the calibrated gates (all pass on seeds 0-47 and 96-143;
# 1-2 kHz 0.1 dB short on 48-95, where candidate 10 failed two, three and three); of the issue's half-vs-half gates
# it fails onset rate on 0-47 and 48-95 (3.11 and 3.15/s against the held-out's 2.61 +- 0.46: its corpus plays
# 3.16/s, the held-out's six pop songs 2.55/s, and 48-clip draws of the corpus fail that gate in 74 %; bench/
# RESULTS.md, seventh and eighth sessions). Pass INSTALL=1 to do it here.
if [ "${INSTALL:-0}" = 1 ]; then
  rm -rf models/default.new && cp -r "$BUNDLE" models/default.new
  rm -rf models/default && mv models/default.new models/default
fi
