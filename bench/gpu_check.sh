#!/usr/bin/env bash
# One prepared run for a lent GPU machine (issue 8, goal 4), about 5 minutes (every step capped, 560 s in all):
#   1. the CUDA test of the torch backend (CUDA graphs vs eager, a render on the device),
#   2. per-call U-Net time at 448 and 8192 frames: torch fp32 / bf16 / fp16 autocast and an fp16 CUDA graph,
#   3. the render table at the paper's 190 s on the GPU: paper settings (DDIM 200 + torchaudio GL 200, fp32 eager)
#      vs ours at 200 steps and the fast path, fp32 eager and fp16 + CUDA graphs; peak GPU memory per row,
#   4. throughput of batched generation (bench/bench_batch.py) on the GPU.
# Writes logs and JSON rows under ${OUT:-bench-gpu-out}. The paper-size random bundle (~400 MB with its torch
# programs) is exported on the machine itself: it is too large to carry there.
#
#   bash bench/gpu_check.sh            # on the device machine, from the repository root
# Prepare .gpu/ here first (bench/gpu_prepare.sh: wheels the device image lacks, music for the scalers) and carry it.
set -uo pipefail
OUT="${OUT:-bench-gpu-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
if [ -d .gpu/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpu/wheels/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:$PYTHONPATH"
music=()
[ -f .gpu/snippet.npy ] && music=(--scaler-audio .gpu/snippet.npy)

date -u
nvidia-smi -L || echo "nvidia-smi: not found"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

echo "== 1. CUDA test of the torch backend"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_engine_torch_backend.py -k cuda -rs

echo "== 2. U-Net per call (paper size)"
timeout 90 python3 -m bench.torch_unet --device cuda --cuda-graphs --frames 448,8192 --calls 10 --no-onnx

echo "== 3. render table, 190.19 s (paper-size random bundle, exported here first)"
rows_json="$OUT/render_rows.jsonl"
timeout 160 python3 -m bench.bench_render "${music[@]}" --device cuda --backend torch --precision fp32 \
    --rows paper-190.19,paperours-190.19,fast-190.19 --json "$rows_json"
timeout 110 python3 -m bench.bench_render --device cuda --backend torch --precision fp16 --cuda-graphs \
    --rows paperours-190.19,fast-190.19,fast-10.379 --json "$rows_json"
echo "== 4. batching queued generations on the GPU (8 clips of 30 s, fp16)"
timeout 80 python3 -m bench.bench_batch --bundle "${TMPDIR:-/tmp}/msanii-bench/paper-random" --seconds 30 \
    --clips 8 --batches 1,2,4,8 --device cuda --backend torch --precision fp16
date -u
