"""trust: the 2-D picture's trustworthiness (analysis/trust.py) against sklearn's exact one, and its cost.

Synthetic float32 embeddings (768 dims): ``bench_analyze``'s ten clusters around a shared offset,
and thirty clusters (three per label) without one. For each: sklearn's
``sklearn.manifold.trustworthiness`` on the same metric (cosine, as cleanlab picks it) and 2-D
PCA (the exact value, O(n^2) memory: ~2.4 GB at 10k), then the estimate with 8 seeds (its
error: the largest and the standard deviation over the seeds), and the seconds of one estimate
against the exact neighbour search it rides on (best of 5, the same process).
"""

from __future__ import annotations

import time

import numpy as np

DIM = 768
SEEDS = 8


def _thirty_clusters(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (30, DIM))
    return (0.8 * centres[rng.integers(0, 30, n)] + rng.normal(0, 1, (n, DIM))).astype(np.float32)


def _best(f, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def _rows(name: str, x: np.ndarray) -> list[dict]:
    """The exact value, the estimate's error over the seeds and its cost, for embeddings ``x``."""
    from sklearn.manifold import trustworthiness as exact

    from spotreview.analysis.outliers import cleanlab_neighbors
    from spotreview.analysis.projection import pca_2d
    from spotreview.analysis.trust import trustworthiness
    from spotreview.defaults import TRUST_K

    n = len(x)
    _, neighbours, metric = cleanlab_neighbors(x, 10)
    low = pca_2d(x)
    start = time.perf_counter()
    reference = float(exact(x, low, n_neighbors=TRUST_K, metric=metric))
    exact_s = time.perf_counter() - start
    errors = np.array([trustworthiness(x, neighbours, low, seed=s) - reference for s in range(SEEDS)])
    estimate_s = _best(lambda: trustworthiness(x, neighbours, low))
    search_s = _best(lambda: cleanlab_neighbors(x, 10), repeats=3)
    row = dict(benchmark="trust", unit="")
    return [
        dict(row, measure=f"T, {name}, {n}x{DIM} (sklearn, exact)", value=reference, note=f"{exact_s:.1f} s"),
        dict(
            row,
            measure=f"max abs(estimate - exact) over {SEEDS} seeds, {name}",
            value=float(np.abs(errors).max()),
            target="<= 0.01",
            met=bool(np.abs(errors).max() <= 0.01),
            note=f"sd {errors.std():.4f}, mean {errors.mean():+.4f}",
        ),
        dict(
            row,
            measure=f"s per estimate, {name}, {n}x{DIM}",
            value=estimate_s,
            unit="s",
            baseline=search_s,
            ratio=estimate_s / search_s,
            note="best of 5; baseline: the exact neighbour search (cleanlab_neighbors), best of 3",
        ),
    ]


def run(quick: bool, **_) -> list[dict]:
    from benchmarks.bench_analyze import _embeddings

    n = 2000 if quick else 10_000
    return _rows("10 clusters, offset", _embeddings(n, 0)[0]) + _rows("30 clusters", _thirty_clusters(n, 0))
