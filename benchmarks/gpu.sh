#!/usr/bin/env bash
# Every GPU figure of issue 12 in one go, a few minutes on an H100 (benchmarks/RESULTS.md).
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from anywhere
#   DEVICE=cpu IMAGES=16 N=2000 bash benchmarks/gpu.sh   # a smoke run without a GPU (slow)
#
# Needs python3 with torch, transformers, numpy, pillow, tqdm, pandas, scipy, threadpoolctl;
# NOT datasets, cleanlab or renumics-spotlight (these paths never import them). Runs:
#   1. embed: ViT-B/16 at the device's precision (bf16 on CUDA), IMAGES in-memory images x 2
#      snapshots, img/s including preprocessing, steady-state forward eager and through
#      torch.compile, share of the GEMM limit;
#   2. analyze: seconds per snapshot at 10k and N x 768 with the search on the device, and
#      where one N-image analyze spends its time;
#   3. knn (the neighbour search of analyze), N x 768: seconds, recall against an exact
#      float32 search, peak RSS;
#   4. probes: the search under torch.profiler, PCA on the host vs on the device, sha256;
#   5. one ViT-B/16 batch's GPU kernels: eager, cudnn.benchmark, compiled, SDPA limited.
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
part() {  # part SECONDS TITLE COMMAND...
    local limit=$1 title=$2; shift 2
    echo; echo "### $title"
    timeout "$limit" "$@" || { echo "$title: FAILED or timed out (rc $?)"; status=1; }
}
part 200 "embed (python -m benchmarks embed --device $DEVICE --images $IMAGES --compile)" \
    "$PYTHON" -m benchmarks embed --device "$DEVICE" --images "$IMAGES" --compile
part 140 "analyze (python -m benchmarks analyze --device $DEVICE --n $N)" \
    "$PYTHON" -m benchmarks analyze --device "$DEVICE" --n "$N"
part 110 "knn (python -m benchmarks knn --device $DEVICE --n $N)" \
    "$PYTHON" -m benchmarks knn --device "$DEVICE" --n "$N"
if [ "$DEVICE" = cuda ]; then  # profiler tables of GPU kernels
    part 80 "probes (python -m benchmarks.gpu_probe $N)" "$PYTHON" -m benchmarks.gpu_probe "$N" "$DEVICE"
    part 150 "ViT batch kernels (python -m benchmarks.gpu_probe vit)" "$PYTHON" -m benchmarks.gpu_probe vit "$DEVICE"
fi
exit $status
