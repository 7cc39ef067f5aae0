"""knn: the exact neighbour search of ``analyze`` (``spotreview/analysis/outliers.py``) by size.

Per size, on the benchmark's synthetic 768-dim embeddings: seconds of the search with the
default precision (bf16 candidates + float64 re-rank where bf16 is native, else float32)
against a plain float32 blocked search in the same run (``precision="fp32"``), neighbour
recall of the default against that exact float32 search (goal 1.0, never < 0.999), how many
rows the bf16 certificate settled, and the peak RSS of a fresh process that loads the
embeddings and runs cleanlab's neighbour lists + scores (``cleanlab_neighbors`` +
``ood_scores``), with the embeddings' own size for comparison.

    python -m benchmarks knn                          # CPU, 10k and 50k, RSS up to 100k
    python -m benchmarks knn --device cuda --n 50000  # on a GPU machine
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from .bench_analyze import DIM, _embeddings

K = 10

_RSS_SCRIPT = """
import gc, json, sys
import torch  # its ~300 MiB of code and state are not the search's
from benchmarks.bench_analyze import _embeddings
from spotreview.analysis.outliers import cleanlab_neighbors, ood_scores

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

n, device = int(sys.argv[1]), sys.argv[2]
x, _ = _embeddings(n, seed=0)
gc.collect()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current RSS
    f.write("5")
d, i, metric = cleanlab_neighbors(x, 10, device=device)
ood_scores(d, metric)
print(json.dumps({"before": before, "after": status("VmHWM"), "x": x.nbytes / 2**20}))
"""


def _search(x: np.ndarray, device: str, precision: str) -> tuple[float, np.ndarray, dict]:
    from spotreview.analysis.outliers import cosine_knn

    stats: dict = {}
    t = time.perf_counter()
    _, idx = cosine_knn(x, K, device=device, precision=precision, stats=stats)
    return time.perf_counter() - t, idx, stats


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, exact))
    return hits / exact.size


def _peak_rss(n: int, device: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(n), device], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool, device: str = "auto", n: int | None = None, **_) -> list[dict]:
    from spotreview.analysis.outliers import cosine_knn

    sizes = [2000, 4000] if quick else [10_000, n or 50_000]
    if n and quick:
        sizes = [n]
    cosine_knn(_embeddings(500, seed=0)[0], K, device=device)  # imports, CUDA context
    rows = []
    for size in sizes:
        x, _ = _embeddings(size, seed=0)
        wall, idx, stats = _search(x, device, "auto")
        wall32, idx32, _ = _search(x, device, "fp32")
        recall = _recall(idx, idx32)
        row = dict(benchmark="knn", unit="s")
        rows += [
            dict(
                row,
                measure=f"search s {size}x{DIM} (device {device})",
                value=wall,
                baseline=wall32,
                ratio=wall / wall32,
                note=f"baseline: float32 blocked search; rows settled per precision: {stats}",
            ),
            dict(
                row,
                measure=f"recall@{K} vs exact fp32 {size}x{DIM}",
                value=recall,
                unit="",
                target=">= 0.999 (goal 1.0)",
                met=recall >= 0.999,
            ),
        ]
    for size in [1000, 2000] if quick else [10_000, 50_000, 100_000]:
        rss = _peak_rss(size, device)
        rows.append(
            dict(
                benchmark="knn",
                measure=f"peak RSS {size}x{DIM}",
                value=rss["after"],
                unit="MiB",
                baseline=rss["before"],
                ratio=rss["after"] / rss["before"],
                note=f"peak during the search; baseline: RSS before it, with the {rss['x']:.0f} MiB embeddings loaded",
            )
        )
    return rows
