#!/usr/bin/env bash
# Every GPU figure of issue 12 in one go, < 6 minutes on an H100; prints markdown tables.
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from anywhere
#   DEVICE=cpu IMAGES=16 N=2000 bash benchmarks/gpu.sh   # a smoke run without a GPU
#
# Needs python3 with torch, transformers, numpy, pillow, tqdm; NOT datasets, cleanlab or
# renumics-spotlight (the embed path never imports them). Runs:
#   1. embed: ViT-B/16 at the device's precision (bf16 on CUDA), IMAGES in-memory images x 2
#      snapshots, img/s including preprocessing, steady-state forward, share of the GEMM limit;
#   2. knn (the neighbour search of analyze), N x 768, if spotreview.neighbors exists: seconds,
#      recall against an exact float32 search, peak RSS.
# Each part has its own time limit; a part that fails or times out is reported and skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
IMAGES=${IMAGES:-4096}
N=${N:-50000}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

echo "## spotreview GPU benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'

status=0
echo; echo "### embed (python -m benchmarks embed --device $DEVICE --images $IMAGES)"
timeout 150 "$PYTHON" -m benchmarks embed --device "$DEVICE" --images "$IMAGES" || { echo "embed: FAILED or timed out (rc $?)"; status=1; }

echo; echo "### knn / analyze neighbour search (python -m benchmarks knn --device $DEVICE --n $N)"
if "$PYTHON" -c 'import spotreview.neighbors, benchmarks.bench_knn' 2>/dev/null; then
    timeout 180 "$PYTHON" -m benchmarks knn --device "$DEVICE" --n "$N" || { echo "knn: FAILED or timed out (rc $?)"; status=1; }
else
    echo "skipped: spotreview.neighbors / benchmarks/bench_knn.py are not in this tree (branch knn not merged)"
fi
exit $status
