"""Exact k-nearest neighbours as cleanlab's outlier score sees them: blocked GEMM + top-k in torch.

cleanlab 2.9's ``OutOfDistribution().fit_score(features=x)`` (``_get_ood_features_scores``):

* metric: cosine for ``dim > 3`` (``cleanlab.internal.neighbor.metric``), else euclidean;
* each point's k nearest *other* points (sklearn ``kneighbors(X=None)`` drops the point
  itself), k = 10; cosine distance ``1 - cos`` clipped to [0, 2];
* exact duplicate rows corrected (``correct_knn_distances_and_indices``): duplicates first,
  at distance 0;
* score ``exp(-mean distance / median(mean distance))``, set to 1 where the mean distance is
  below ``100 * float64 epsneg`` (cosine) or ``sqrt(100 * float64 eps)`` (euclidean).

sklearn does the cosine search as one float32 GEMM in 1 GB chunks that it allocates afresh
every time, so the kernel must zero every new page (benchmarks/RESULTS.md).
Here queries go in blocks of rows against all points into one reused buffer, so memory is
O(n*K + block*n) and never n x n. A float32 search of all rows on a CPU goes in square tiles
instead and computes each similarity once, for its row and its column (``_symmetric_topk``):
the matrix is symmetric. Where the device multiplies bfloat16 natively (AVX512-BF16
or AMX on CPUs) the search runs in bf16 for K = k + margin candidates, then every candidate's
similarity is recomputed in float64 and the top k taken. A per-row certificate proves that no
point outside the candidates can be nearer than the k-th (see ``_bf16_error``); rows without
one are searched again in float32, and rows where even float32 cannot separate the k-th
neighbour from the next in float64. So the neighbours are those of an exact search on the
rows; only neighbours tied to within float32 rounding are ambiguous, as they are between
any two float32 implementations.

The final distances are float64 (sklearn's are float32, off by up to ~3e-7). The score
divides them by their median, so where clusters are tight (median distance 0.03) float32
rounding moves cleanlab's own scores by a few 1e-6; ours equal ``fit_score`` on the float64
features to ~1e-12 and on float32 features to the rounding of its float32 distances.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np

HIGH_DIMENSION_CUTOFF = 3  # cleanlab: cosine above this many columns, euclidean at or below
# Extra bf16 candidates per row beyond k (48 in all for k = 10): fewer make top-k cheaper but leave
# more rows to a float32 search (a row the certificate cannot settle is searched again, never
# guessed); the choice is measured in benchmarks/RESULTS.md.
BF16_MARGIN = 38
# float32 rounding (~5e-5 at 768 dims) rarely ties the k-th neighbour with the 16th: every row of
# the 50k benchmark settles at 6 spare candidates; more only slow the search.
FP32_MARGIN = 6
BF16_MIN_ROWS = 4096  # below this float32 is quick enough and bf16 saves nothing
_U32 = 2.0**-24  # unit roundoff of float32
_U16 = 2.0**-7  # bf16 output rounding: 2**-8 rounding to nearest; 2**-7 covers truncation too
_SLACK = 1e-6  # covers float32 rounding of the normalised and centred copies (< 1e-6)


def cleanlab_neighbors(
    x: np.ndarray, k: int, *, device: str = "auto", precision: str = "auto", stats: dict | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The neighbour lists cleanlab's ``OutOfDistribution().fit_score(features=x)`` works from.

    ``x``: (n, dim) float features, n > k. Returns distances (n, k) ascending (float64 for
    cosine, cleanlab's own float for euclidean),
    indices (n, k) int64 (ties in index order, as a stable sort of cleanlab's graph leaves
    them), exact duplicates corrected as cleanlab does, and the metric name.
    """
    n, dim = x.shape
    if not 0 < k < n:
        raise ValueError(f"k={k} neighbours need more than k points; got {n}")
    if dim > HIGH_DIMENSION_CUTOFF:
        distances, indices = cosine_knn(x, k, device=device, precision=precision, stats=stats)
        metric = "cosine"
        # An exact duplicate is at (float32) distance ~0 and hence among the neighbours; zero
        # rows are at distance 1 from each other, so they need the check too.
        tol = max(1e-4, 4 * dim * _U32)
        if (distances[:, 0] <= tol).any() or not np.all(np.any(x != 0, axis=1)):
            from cleanlab.internal.neighbor.knn_graph import correct_knn_distances_and_indices

            distances, indices = correct_knn_distances_and_indices(x, distances, indices)
    else:  # 2-3 columns: cheap, so take cleanlab's own (sklearn tree) search as it is
        distances, indices = _cleanlab_euclidean(x, k)
        metric = "euclidean"
    order = np.argsort(distances, axis=1, kind="stable")  # what sklearn does to the graph
    return np.take_along_axis(distances, order, 1), np.take_along_axis(indices, order, 1), metric


def ood_scores(distances: np.ndarray, metric: str) -> np.ndarray:
    """cleanlab's feature-based outlier scores (n,) float64 from (n, k) neighbour distances.

    The formula of ``OutOfDistribution._get_ood_features_scores`` with t = 1 and the scaling
    factor fitted on these data, step for step, including ``correct_precision_errors``.
    Lower means more atypical.
    """
    avg = distances.mean(axis=1)
    eps = np.finfo(np.float64)
    scaling = float(max(np.median(avg), 100 * eps.eps))
    scores = np.exp(-1 * avg / max(scaling, 1e-6))  # 1e-6: cleanlab.internal.constants.EPSILON
    tol = 100 * eps.epsneg if metric == "cosine" else np.sqrt(100 * eps.eps)
    scores[avg < tol] = 1
    return np.asarray(scores, dtype=np.float64)


def knn_accuracy(indices: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Leave-one-out accuracy of a majority vote among the first k neighbours of each point.

    Ties go to the smallest label, as in sklearn's ``KNeighborsClassifier.predict`` (its
    ``_mode`` returns the smallest of the most frequent classes).
    """
    classes, y = np.unique(labels, return_inverse=True)
    votes = y[indices[:, :k]]
    counts = np.zeros((len(y), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.arange(len(y))[:, None], votes), 1)
    return float((counts.argmax(axis=1) == y).mean())


def cosine_knn(
    x: np.ndarray,
    k: int,
    *,
    device: str = "auto",
    precision: str = "auto",
    block_rows: int | None = None,
    margin: int = BF16_MARGIN,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other points by cosine distance.

    ``x``: (n, dim) float. ``device``: "auto" (CUDA when available), "cpu", "cuda", ...
    ``precision``: "auto" (bf16 candidates on a CPU that multiplies bf16 natively when
    n >= BF16_MIN_ROWS, else float32), "bf16", "fp32" or "fp64" (reference: float64 search).
    Returns distances (n, k) float64 ``1 - cos`` clipped to [0, 2] like sklearn, ascending
    with ties in index order, and indices (n, k) int64. ``stats`` (a dict) gets the number of
    rows settled at each precision.
    """
    import torch

    from spotreview.embedding.models import bf16_is_native

    n, dim = x.shape
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )
    if precision == "auto":
        # On CUDA float32 is exact with no certificate needed, and fast (benchmarks/RESULTS.md)
        precision = "bf16" if dev.type == "cpu" and n >= BF16_MIN_ROWS and bf16_is_native(dev) else "fp32"
    if precision not in ("bf16", "fp32", "fp64"):
        raise ValueError(f"unknown precision {precision!r}; expected auto, bf16, fp32 or fp64")
    stats = {} if stats is None else stats
    # The exact similarities are those of the rows normalised in float64 (zero rows stay zero,
    # as in sklearn's normalize); the searches run on rounded copies of them.
    # Sent to the device as it is and widened there: `.to(cuda, float64)` would widen on the host
    # (torch converts CPU-GPU copies on the CPU) and send twice the bytes. A copy always: the
    # rows are normalised in place below, and the caller's array must not change.
    x64 = torch.as_tensor(np.asarray(x)).to(dev).to(torch.float64, copy=True)
    norms = torch.linalg.vector_norm(x64, dim=1, keepdim=True)
    x64 /= torch.where(norms == 0, 1.0, norms)
    # rows per block: on a CPU 1024, so that a block's similarities are still in cache when
    # top-k reads them; ``block_rows`` is also the tile of the symmetric float32 search
    budget, most_rows = ((1 << 30), 4096) if dev.type == "cuda" else ((256 << 20), 1024)
    todo = torch.arange(n, device=dev)
    sims = torch.empty(n, k, dtype=torch.float64, device=dev)
    idx = torch.empty(n, k, dtype=torch.int64, device=dev)
    with _exact_matmul(dev):
        for stage in ("bf16", "fp32", "fp64")[("bf16", "fp32", "fp64").index(precision) :]:
            if len(todo) == 0:
                break
            keys, queries, offset, err = _stage_operands(x64, stage)
            kk = min(n - 1, k + (margin if stage == "bf16" else FP32_MARGIN if stage == "fp32" else 0))
            if stage == "fp32" and dev.type == "cpu" and len(todo) == n:
                cand_vals, cand_idx = _symmetric_topk(keys, kk, block_rows or 2048)
            else:
                block = block_rows or max(kk, min(most_rows, budget // (n * keys.element_size())))
                cand_vals, cand_idx = _blocked_topk(queries, keys, todo, kk, block)
            s, i = _rerank(x64, todo, cand_idx, k)
            if stage == "fp64" or kk == n - 1:
                ok = torch.ones(len(todo), dtype=torch.bool, device=dev)
            else:  # the certificate: no point outside the candidates can beat the k-th
                threshold = cand_vals.double().amin(dim=1)
                ok = s[:, k - 1] - offset[todo] > threshold + err(todo, threshold)
            sims[todo[ok]], idx[todo[ok]] = s[ok], i[ok]
            stats[stage] = stats.get(stage, 0) + int(ok.sum())
            todo = todo[~ok]
            del keys, queries, cand_vals, cand_idx
    distances = (1.0 - sims).clamp_(0.0, 2.0).cpu().numpy()
    indices = idx.cpu().numpy()
    order = np.lexsort((indices, distances), axis=-1)  # by distance, ties by index
    return np.take_along_axis(distances, order, 1), np.take_along_axis(indices, order, 1)


# --- the stages ---------------------------------------------------------------------------


def _stage_operands(x64, stage: str):
    """Keys (n, dim), queries (n, dim), per-row offset (n,) float64 and an error bound.

    bf16: queries are the normalised rows, keys the rows minus their mean ``mu``, so that
    ``query . key = cos - query . mu``: small numbers where bf16's spacing is fine
    (embeddings share a large common direction, which would otherwise leave all
    similarities within a few bf16 steps of each other). The ranking per query is unchanged.
    """
    import torch

    n, dim = x64.shape
    zero = torch.zeros(n, dtype=torch.float64, device=x64.device)
    if stage == "fp64":
        return x64, x64, zero, None
    gamma = dim * _U32 / (1 - dim * _U32)  # float32 accumulation of dim exact products
    if stage == "fp32":
        xn = x64.float()
        return xn, xn, zero, lambda rows, threshold: gamma * 1.000001 + _SLACK
    mu = x64.mean(dim=0).float()
    keys = torch.empty(n, dim, dtype=torch.bfloat16, device=x64.device)
    queries = torch.empty_like(keys)
    q_res, k_res, kt_norm = (torch.empty(n, dtype=torch.float32, device=x64.device) for _ in range(3))
    # Chunks: no full-size temporaries, no fresh pages. On a CPU of 512 rows, whose temporaries
    # stay in cache; on a GPU fewer launches count more.
    chunk = 4096 if x64.device.type == "cuda" else 512
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        xn = x64[rows].float()
        centred = xn - mu
        keys[rows], queries[rows] = centred, xn
        # bf16 -> float32, and a float32 minus its bf16 rounding, are exact
        for out, t in (
            (q_res, queries[rows].float() - xn),
            (k_res, keys[rows].float() - centred),
            (kt_norm, keys[rows].float()),
        ):
            torch.linalg.vector_norm(t, dim=1, out=out[rows])
    # float32 norms of dim terms are within dim * u (relative) of the exact ones: round up
    up = 1 + 2 * dim * _U32
    q_res = q_res.double() * up
    q_norm = 1 + _U32  # |float32 copy of a unit row|
    qt_norm = q_norm + q_res  # |bf16 copy| <= |copy| + |bf16 copy - copy|
    offset = x64 @ mu.double()
    return (
        keys,
        queries,
        offset,
        _bf16_error(q_norm, q_res, qt_norm, k_res.max().item() * up, kt_norm.max().item() * up, gamma),
    )


def _bf16_error(q_norm, q_res, qt_norm, k_res, kt_norm, gamma):
    """Per query row, a bound on |computed - exact| of ``query . key`` over all keys.

    Rounding the inputs to bf16: ``|q~.c~ - q.c| <= |q| |c~ - c| + |q~ - q| |c~|``; float32
    accumulation of the d exact bf16 products: ``gamma_d |q~| |c~|``; the bf16 output of a
    value v below the row's threshold T: ``u |T| / (1 - u)``. Key-side norms enter as their
    maximum over all keys (``k_res``, ``kt_norm``), so the bound holds for every point
    outside the candidates. ``_SLACK`` covers the float32 copies of the float64 rows.
    """
    fixed = q_norm * k_res + q_res * kt_norm + gamma * qt_norm * kt_norm + _SLACK

    def err16(rows, threshold):
        return fixed[rows] + _U16 * threshold.abs() / (1 - _U16)

    return err16


def _blocked_topk(queries, keys, rows, kk: int, block: int):
    """Top-kk of ``queries[rows] @ keys.T`` per row, the row's own point excluded.

    One (block, n) buffer is reused for every block: no n x n matrix, no fresh pages.
    Returns values (len(rows), kk) in the keys' dtype and indices (len(rows), kk) int64.
    """
    import torch

    n, dev = len(keys), keys.device
    m = len(rows)
    buf = torch.empty(min(block, m), n, dtype=keys.dtype, device=dev)
    vals = torch.empty(m, kk, dtype=keys.dtype, device=dev)
    idx = torch.empty(m, kk, dtype=torch.int64, device=dev)
    contiguous = m == n  # all rows, in order: slice instead of gathering
    for start in range(0, m, block):
        stop = min(start + block, m)
        r = rows[start:stop]
        q = queries[start:stop] if contiguous else queries.index_select(0, r)
        s = buf[: stop - start]
        torch.mm(q, keys.T, out=s)
        s[torch.arange(stop - start, device=dev), r] = -math.inf
        torch.topk(s, kk, dim=1, sorted=False, out=(vals[start:stop], idx[start:stop]))
    return vals, idx


def _symmetric_topk(x, kk: int, tile: int = 2048):
    """Top-kk of ``x @ x.T`` per row, the row's own point excluded, each product computed once.

    The similarity matrix is symmetric, so each (tile, tile) block above the diagonal serves
    its rows and its columns: half the GEMM of ``_blocked_topk``. Each point keeps a running
    top-kk. Once a point's list is full, only a block's entries above the list's smallest value
    can enter it; one comparison finds those few (a top-k of the whole block costs more than its
    GEMM's share, RESULTS.md). Tiles of 2048: a block's 16 MiB fit under glibc's mmap
    threshold, so its pages are reused, not faulted in afresh.
    Returns values (n, kk) float32 and indices (n, kk) int64, unsorted.
    """
    import torch

    n = len(x)
    vals = torch.full((n, kk), -math.inf, dtype=x.dtype)
    idx = torch.zeros(n, kk, dtype=torch.int64)
    flipped = torch.empty(tile * tile, dtype=x.dtype)

    def offer(points, candidates, values):
        """Merge (point, candidate, similarity) triples, ``points`` ascending, into the lists."""
        uniq, inverse, counts = torch.unique_consecutive(points, return_inverse=True, return_counts=True)
        slot = kk + torch.arange(len(points)) - (counts.cumsum(0) - counts)[inverse]
        width = kk + int(counts.max())
        both_v = torch.full((len(uniq), width), -math.inf, dtype=x.dtype)
        both_i = torch.zeros(len(uniq), width, dtype=torch.int64)
        both_v[:, :kk], both_i[:, :kk] = vals[uniq], idx[uniq]
        both_v[inverse, slot], both_i[inverse, slot] = values, candidates
        vals[uniq], pos = torch.topk(both_v, kk, dim=1, sorted=False)
        idx[uniq] = both_i.gather(1, pos)

    def take(first_point: int, block, first_candidate: int):
        """Offer ``block``'s rows (points from ``first_point``) their candidates."""
        points = slice(first_point, first_point + len(block))
        floor = vals[points].amin(dim=1)
        if torch.isinf(floor).any():  # a list not full yet: the block's own top-kk of each row
            v, i = torch.topk(block, min(kk, block.shape[1]), dim=1, sorted=False)
            both_v = torch.cat([vals[points], v], dim=1)
            both_i = torch.cat([idx[points], i + first_candidate], dim=1)
            vals[points], pos = torch.topk(both_v, kk, dim=1, sorted=False)
            idx[points] = both_i.gather(1, pos)
            return
        r, c = (block > floor[:, None]).nonzero(as_tuple=True)
        if len(r):
            offer(r + first_point, c + first_candidate, block[r, c])

    def take_columns(first_point: int, block, first_candidate: int):
        """Offer ``block``'s columns (points from ``first_point``) their candidates, the rows."""
        floor = vals[first_point : first_point + block.shape[1]].amin(dim=1)
        if torch.isinf(floor).any():
            flip = flipped[: block.numel()].view(block.shape[1], block.shape[0])
            take(first_point, flip.copy_(block.T), first_candidate)
            return
        r, c = (block > floor[None, :]).nonzero(as_tuple=True)
        if len(r):
            order = torch.argsort(c, stable=True)
            r, c = r[order], c[order]
            offer(c + first_point, r + first_candidate, block[r, c])

    for top in range(0, n, tile):
        for left in range(top, n, tile):
            block = _fp32_gemm_nt(x[top : top + tile], x[left : left + tile])
            if left == top:
                block.fill_diagonal_(-math.inf)
            take(top, block, left)
            if left > top:
                take_columns(left, block, top)
    return vals, idx


def _fp32_gemm_nt(a, b):
    """``a @ b.T`` in float32 on the CPU through oneDNN where torch has it, else ``torch.mm``.

    oneDNN picks its kernels by the CPU's ISA on every vendor; MKL's sgemm (``torch.mm``)
    takes its AVX2 path on AMD CPUs with AVX-512: half the speed there (RESULTS.md). Both
    accumulate in float32, which is all the certificate assumes.
    """
    linear = _onednn_linear()
    return a @ b.T if linear is None else linear(a, b, None, "none", [], "")


@functools.cache
def _onednn_linear():
    """torch's oneDNN linear op (private: inductor's), or None where this torch has no working one."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    try:
        linear = torch.ops.mkldnn._linear_pointwise
        a, b = torch.ones(2, 3), torch.ones(4, 3)
        return linear if torch.equal(linear(a, b, None, "none", [], ""), a @ b.T) else None
    except (AttributeError, RuntimeError, TypeError):
        return None


def _rerank(x64, rows, cand, k: int, block: int = 1024):
    """float64 cosine similarities of each row with its candidates; the k largest, descending.

    ``x64``: (n, dim) float64 normalised rows. A sampled GEMM reads the candidate rows in
    place (gathering them first would triple the memory traffic).
    """
    import warnings

    import torch

    m, kk = cand.shape
    dev = x64.device
    s_out = torch.empty(m, k, dtype=torch.float64, device=dev)
    i_out = torch.empty(m, k, dtype=torch.int64, device=dev)
    crow = torch.arange(0, (min(block, m) + 1) * kk, kk, device=dev)
    for start in range(0, m, block):
        stop = min(start + block, m)
        b = stop - start
        c = cand[start:stop].sort(dim=1).values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            pattern = torch.sparse_csr_tensor(
                crow[: b + 1],
                c.reshape(-1),
                torch.zeros(b * kk, dtype=torch.float64, device=dev),
                size=(b, len(x64)),
                check_invariants=False,
            )
            s = torch.sparse.sampled_addmm(pattern, x64[rows[start:stop]], x64.T, beta=0.0)
        top, pos = torch.topk(s.values().view(b, kk), k, dim=1, sorted=True)
        s_out[start:stop], i_out[start:stop] = top, c.gather(1, pos)
    return s_out, i_out


@contextlib.contextmanager
def _exact_matmul(device):
    """On CUDA, float32 matmuls in full float32 (no TF32) and bf16 reductions in float32."""
    import torch

    if device.type != "cuda":
        yield
        return
    m = torch.backends.cuda.matmul
    saved = (m.allow_tf32, m.allow_bf16_reduced_precision_reduction)
    m.allow_tf32, m.allow_bf16_reduced_precision_reduction = False, False
    try:
        yield
    finally:
        m.allow_tf32, m.allow_bf16_reduced_precision_reduction = saved


def _cleanlab_euclidean(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's own corrected graph (sklearn search) for low-dimensional features."""
    import contextlib as cl
    import io
    import warnings

    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index

    with warnings.catch_warnings(), cl.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        graph, _ = create_knn_graph_and_index(x, n_neighbors=k)
    n = len(x)
    return graph.data.reshape(n, k), graph.indices.reshape(n, k).astype(np.int64)
