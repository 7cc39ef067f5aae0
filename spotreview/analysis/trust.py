"""Can the 2-D picture be trusted? The trustworthiness (Venna & Kaski 2001) of a snapshot's 2-D
PCA against the neighbours its embedding has, estimated from what ``analyze`` already holds.

    T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i} (r(i, j) - k)

``U_i``: the k nearest neighbours of image i in 2-D that are not among its k nearest in the
embedding; ``r(i, j)``: the rank of j among i's neighbours in the embedding (1 = nearest). T is
1 when every 2-D neighbourhood holds only true neighbours and about 0.5 for a random picture;
for n >> k, 1 - T is about the mean of (r - k) / n over the 2-D neighbours, so at T = 0.8 an
image's 2-D neighbours lie, on average, a fifth of the set away in the embedding's own order.

sklearn's ``trustworthiness`` ranks every pair (O(n^2 dim) time, O(n^2) memory). Here:

* the embedding's neighbours and metric are cleanlab's (``cleanlab_neighbors``: cosine above
  3 columns, else euclidean; exact duplicates first), so ranks 1..K are known exactly;
* 2-D neighbours: a KD-tree on the PCA coordinates, each image's own point left out;
* a 2-D neighbour ranked beyond the K known: r = K + 1 + the number of other images nearer to
  i than j, that number estimated from a seeded sample of ``sample`` images. Each block of
  ``BLOCK`` rows draws its own sample and costs one matrix product; the blocks' errors are
  independent and average out (one sample shared by all rows would make every row err alike);
* at most ``rows`` images i (a seeded sample of rows), their sum scaled by n / rows.

With n <= ``sample`` every image is in the sample and every row is used, so T is exact (ties
apart, which sklearn breaks arbitrarily too). How close the estimate comes to sklearn's is
checked in ``tests/test_trust.py`` and measured in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import math

import numpy as np

from spotreview.defaults import TRUST_K

SAMPLE = 256  # images each block of rows compares a pair against
ROWS = 2048  # images i summed over (all of them in smaller sets)
BLOCK = 128  # rows sharing one sample


def trustworthiness(
    x: np.ndarray,
    neighbours: np.ndarray,
    low: np.ndarray,
    *,
    k: int = TRUST_K,
    sample: int = SAMPLE,
    rows: int = ROWS,
    seed: int = 0,
) -> float:
    """Trustworthiness T(k) of the 2-D picture ``low`` of the embeddings ``x``, a float in [0, 1].

    ``x``: (n, dim) float embeddings; ``neighbours``: (n, K) int, K >= k, each image's nearest
    other images in the embedding, nearest first (``cleanlab_neighbors``' indices);
    ``low``: (n, 2) float, the 2-D coordinates. NaN when n <= 2k: as in sklearn, T needs more
    than 2k images. The same arguments give the same value (seeded samples).
    """
    from threadpoolctl import threadpool_limits

    n = _check(x, neighbours, low, k)
    if n <= 2 * k:
        return math.nan
    rng = np.random.default_rng(seed)
    chosen = np.arange(n) if n <= rows else np.sort(rng.choice(n, rows, replace=False))
    near_2d = _neighbours_2d(np.asarray(low, dtype=np.float64), chosen, k)  # (R, k)
    high = np.asarray(neighbours, dtype=np.int64)[chosen]  # (R, K)
    match = near_2d[:, :, None] == high[:, None, :]
    known = match.any(axis=2)  # the 2-D neighbour is among the K known: its rank is exact
    rank = match.argmax(axis=2) + 1
    penalty = float(np.where(known, np.maximum(rank - k, 0), 0).sum())
    # Small products on one BLAS thread: two gain little, and stall for long when other jobs
    # keep the cores busy (benchmarks/RESULTS.md), as in pca_2d.
    with threadpool_limits(limits=1, user_api="blas"):
        penalty += _beyond_known(x, high, near_2d, known, chosen, k, min(sample, n), rng)
    t = 1.0 - penalty * (n / len(chosen)) * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
    return float(np.clip(t, 0.0, 1.0))


def _check(x, neighbours, low, k: int) -> int:
    """Number of images; ValueError when the shapes disagree."""
    n = len(x)
    if np.ndim(x) != 2 or np.shape(low) != (n, 2):
        raise ValueError(f"expected x (n, dim) and low (n, 2), got {np.shape(x)} and {np.shape(low)}")
    if np.ndim(neighbours) != 2 or len(neighbours) != n or np.shape(neighbours)[1] < k or k < 1:
        raise ValueError(f"expected neighbours (n, K) with K >= k = {k}, got {np.shape(neighbours)}")
    return n


def _neighbours_2d(low: np.ndarray, chosen: np.ndarray, k: int) -> np.ndarray:
    """(R, k) int64: the k nearest other points in 2-D of each chosen row (KD-tree, euclidean)."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(low).query(low[chosen], k + 1)
    own = idx == chosen[:, None]
    own[~own.any(axis=1), -1] = True  # the point tied with k others at its own spot: drop the farthest
    return idx[~own].reshape(len(chosen), k).astype(np.int64)


def _closeness(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, w, o)`` with ``closeness(i, l) = (x_i . x_l) w_l - o_l``, larger = nearer to i.

    Cosine (above ``HIGH_DIMENSION_CUTOFF`` columns, as cleanlab): ``w = 1 / |x_l|`` (zero rows
    0), the cosine times the row's own norm; euclidean: ``o = |x_l|^2 / 2``, i.e.
    ``(|x_i|^2 - d^2) / 2``. Either orders each row's images as the distance does. float32 for
    cosine, float64 for euclidean (few columns, where the subtraction needs the digits).
    """
    from spotreview.analysis.outliers import HIGH_DIMENSION_CUTOFF

    if x.shape[1] > HIGH_DIMENSION_CUTOFF:
        x = np.asarray(x, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        w = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return x, w, np.zeros_like(w)
    x = np.asarray(x, dtype=np.float64)
    return x, np.ones(len(x)), np.einsum("ij,ij->i", x, x) / 2


def _beyond_known(x, high, near_2d, known, chosen, k: int, m: int, rng) -> float:
    """Sum of r(i, j) - k over the (row, 2-D neighbour) pairs beyond the known ranks, each r
    estimated as K + 1 + the count of sampled images nearer to i than j, scaled to all images
    other than i, j and i's K known neighbours (those three kinds are never counted)."""
    n, big_k = len(x), high.shape[1]
    x, w, o = _closeness(x)
    others = max(n - 2 - big_k, 0)
    column = np.full(n, -1, dtype=np.int64)  # image -> its column in this block's sample, or -1
    total = 0.0
    for start in range(0, len(chosen), BLOCK):
        rows = chosen[start : start + BLOCK]
        pick = np.arange(n) if m == n else rng.choice(n, m, replace=False)
        column[pick] = np.arange(m)
        near = (x[rows] @ x[pick].T) * w[pick] - o[pick]  # (b, m)
        skip = np.zeros(near.shape, dtype=bool)  # the row itself and its known neighbours
        for images in (rows[:, None], high[start : start + len(rows)]):
            r, c = np.nonzero(column[images] >= 0)
            skip[r, column[images][r, c]] = True
        near[skip] = -np.inf
        js = near_2d[start : start + len(rows)]
        pair = np.matmul(x[js], x[rows][:, :, None])[..., 0] * w[js] - o[js]  # (b, k)
        sampled = column[js] >= 0  # j itself in the sample: its own column, so it never counts
        pair[sampled] = near[np.nonzero(sampled)[0], column[js][sampled]]
        nearer = np.count_nonzero(near[:, None, :] > pair[:, :, None], axis=2)
        size = m - skip.sum(axis=1)[:, None] - sampled
        rank = big_k + 1 + nearer * (others / np.maximum(size, 1))
        total += float((rank - k)[~known[start : start + len(rows)]].sum())
        column[pick] = -1
    return total
