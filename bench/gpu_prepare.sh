#!/usr/bin/env bash
# Run HERE (with network) before bench/gpu_check.sh goes to a lent GPU machine, which has torch but none of
# diffusers/soundfile/soxr/mido and no FluidSynth, and cannot download. Fills .gpu/ (git-ignored through
# .git/info/exclude) with cp312 wheels for those packages and 10 s of rendered music for the scalers:
#
#   bash bench/gpu_prepare.sh
#   # then the device tool: run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/wheels
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .gpu/wheels \
    "diffusers==$(python3 -c 'import diffusers; print(diffusers.__version__)')" importlib-metadata \
    soundfile cffi pycparser soxr mido python-osc
python3 - <<'PY'
import numpy as np
from bench.music import music_snippet
np.save(".gpu/snippet.npy", music_snippet(10.0, 44_100))
PY
du -sh .gpu
