"""analysis/outliers.py: exact cosine kNN (blocked GEMM + top-k, bf16 candidates), cleanlab's scores; the
native-bf16 check the search shares with embedding (ONEDNN_MAX_CPU_ISA)."""

from __future__ import annotations

import numpy as np
import pytest

from spotreview.analysis.outliers import cleanlab_neighbors, cosine_knn, knn_accuracy, ood_scores


def _clusters(n: int, dim: int, seed: int = 0, offset: float = 0.0, classes: int = 4):
    """Seeded clustered float32 features and labels (continuous: no ties between neighbours)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(0, 1, (classes, dim))
    x = offset + 0.8 * centres[labels] + rng.normal(0, 1, (n, dim))
    return x.astype(np.float32), labels


def _brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 cosine distances to all other rows, sorted: the reference search."""
    xn = x.astype(np.float64)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    d = 1 - xn @ xn.T
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


def _fit_score(x: np.ndarray) -> np.ndarray:
    from cleanlab.outlier import OutOfDistribution

    return OutOfDistribution().fit_score(features=x, verbose=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp64"])
# 37: n is not a multiple of the block; 5: blocks narrower than the candidates kept per row
@pytest.mark.parametrize("block_rows", [None, 37, 5])
def test_neighbours_equal_brute_force(precision, block_rows):
    x, _ = _clusters(500, 48, offset=1.5)
    stats = {}
    dist, idx = cosine_knn(x, 10, precision=precision, block_rows=block_rows, device="cpu", stats=stats)
    ref_d, ref_i = _brute_force(x, 10)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=0, atol=1e-12)
    assert dist.dtype == np.float64 and idx.dtype == np.int64
    assert sum(stats.values()) == 500 and stats.get(precision) == 500


def test_the_float32_search_without_onednn_takes_torch_mm(monkeypatch):
    """The tiled search's GEMM is torch's private oneDNN op; a torch without it gets torch.mm."""
    from spotreview.analysis import outliers

    monkeypatch.setattr(outliers, "_onednn_linear", lambda: None)
    x, _ = _clusters(300, 24, offset=1.0, seed=7)
    dist, idx = cosine_knn(x, 10, precision="fp32", block_rows=64, device="cpu")
    np.testing.assert_array_equal(idx, _brute_force(x, 10)[1])


def test_bf16_rows_without_certificate_are_searched_again():
    """With no margin the bf16 candidates cannot prove most rows; those rows fall back to
    float32 and the result is still exact."""
    x, _ = _clusters(400, 32, offset=3.0, seed=1)
    stats = {}
    dist, idx = cosine_knn(x, 10, precision="bf16", margin=0, device="cpu", stats=stats)
    assert stats.get("fp32", 0) > 0 and sum(stats.values()) == 400
    np.testing.assert_array_equal(idx, _brute_force(x, 10)[1])


def test_tied_similarities_across_tiles_keep_exact_distances():
    """Duplicates tie at the running k-th value the tiled float32 search filters on: the
    distances still equal the float64 search's and each index is at its stated distance."""
    x, _ = _clusters(200, 16, seed=4)
    x[20:35] = x[19]  # a set bigger than k + 1, spread over three tiles of 7
    x[100:103] = x[150]
    dist, idx = cosine_knn(x, 10, precision="fp32", block_rows=7, device="cpu")
    np.testing.assert_allclose(dist, _brute_force(x, 10)[0], rtol=0, atol=1e-12)
    xn = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(1 - np.einsum("id,ikd->ik", xn, xn[idx]), dist, rtol=0, atol=1e-12)
    assert (idx != np.arange(200)[:, None]).all()


def test_scores_equal_cleanlab_fit_score():
    x, _ = _clusters(600, 64)
    dist, idx, metric = cleanlab_neighbors(x, 10, precision="bf16", device="cpu")
    scores = ood_scores(dist, metric)
    assert metric == "cosine" and scores.dtype == np.float64
    np.testing.assert_allclose(scores, _fit_score(x), rtol=0, atol=1e-6)  # cleanlab in float32
    np.testing.assert_allclose(scores, _fit_score(x.astype(np.float64)), rtol=0, atol=1e-12)


def test_exact_duplicates_are_corrected_as_cleanlab_does():
    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index

    x, _ = _clusters(200, 16, seed=2)
    x[1] = x[0]  # a pair
    x[20:35] = x[19]  # a set bigger than k + 1
    x[50] = x[51] = 0  # zero rows: cosine distance 1 to everything, yet duplicates
    x64 = x.astype(np.float64)
    dist, idx, metric = cleanlab_neighbors(x, 10, device="cpu")
    np.testing.assert_allclose(ood_scores(dist, metric), _fit_score(x64), rtol=0, atol=1e-12)
    graph, _ = create_knn_graph_and_index(x64, n_neighbors=10)
    ref_d, ref_i = graph.data.reshape(200, 10), graph.indices.reshape(200, 10)
    for rows in ([0, 1], list(range(19, 35))):
        np.testing.assert_array_equal(idx[rows], ref_i[rows])
        np.testing.assert_allclose(dist[rows], ref_d[rows], atol=1e-12)
    # a zero row is at distance 1 from every other row: only its duplicate is determined
    np.testing.assert_array_equal(idx[[50, 51], 0], [51, 50])
    np.testing.assert_allclose(dist[[50, 51]], ref_d[[50, 51]], atol=1e-12)
    assert (dist[[0, 1], 0] == 0).all() and (dist[19:35] == 0).all()


def test_knn_accuracy_equals_sklearn_vote_on_cleanlab_graph():
    """The reference: KNeighborsClassifier voting on cleanlab's precomputed graph."""
    import warnings

    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
    from sklearn.neighbors import KNeighborsClassifier

    x, labels = _clusters(400, 32, seed=3, classes=6)
    labels = labels * 7 + 3  # not 0..C-1: classes are matched by value
    x[5] = x[6]
    dist, idx, _ = cleanlab_neighbors(x, 10, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph, _ = create_knn_graph_and_index(x.astype(np.float64), n_neighbors=10)
        voter = KNeighborsClassifier(n_neighbors=5, metric="precomputed").fit(graph, labels)
        expected = float((voter.predict(graph) == labels).mean())
    assert 0.3 < expected < 1  # some votes wrong, some tied: the tie rule matters
    assert knn_accuracy(idx, labels, 5) == expected


def test_vote_ties_go_to_the_smallest_label():
    labels = np.array([2, 7, 2, 2, 7, 7])
    indices = np.array([[2, 3, 4, 5], [2, 3, 4, 5], [0, 3, 1, 4], [1, 4, 5, 0], [1, 5, 0, 2], [1, 4, 0, 3]])
    # votes: 2 2 7 7 | 2 2 7 7 | 2 2 7 7 | 7 7 7 2 | 7 7 2 2 | 7 7 2 2 -> 2 2 2 7 2 2:
    # right for rows 0 and 2 only (the largest label on ties would be right for 1, 4, 5)
    assert knn_accuracy(indices, labels, 4) == pytest.approx(2 / 6)


def test_low_dimensional_features_use_cleanlab_euclidean():
    x, _ = _clusters(150, 3, seed=4)
    dist, idx, metric = cleanlab_neighbors(x, 10, device="cpu")
    assert metric == "euclidean"
    np.testing.assert_allclose(ood_scores(dist, metric), _fit_score(x), rtol=0, atol=1e-12)


def test_small_n_edges():
    x, _ = _clusters(11, 8, seed=5)
    dist, idx = cosine_knn(x, 10, precision="bf16", device="cpu")  # every other point is a neighbour
    np.testing.assert_array_equal(idx, _brute_force(x, 10)[1])
    with pytest.raises(ValueError, match="more than k points"):
        cleanlab_neighbors(x[:10], 10)
    with pytest.raises(ValueError, match="unknown precision"):
        cosine_knn(x, 3, precision="fp16")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_callers_features_are_left_as_they_were(dtype):
    # the search normalises its own copy: analyze's PCA reads the same array afterwards
    x = (np.random.default_rng(3).normal(size=(300, 16)) * 5 + 2).astype(dtype)
    before = x.copy()
    cleanlab_neighbors(x, 10)
    assert np.array_equal(x, before)


def _cpu_reports(monkeypatch, avx512_bf16: bool) -> None:
    """Make torch report a CPU with (or without) AVX512-BF16 and no AMX, and no ISA pinned."""
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "variable, isa, native",
    [
        ("ONEDNN_MAX_CPU_ISA", "AVX2", False),
        ("ONEDNN_MAX_CPU_ISA", "avx512_core", False),  # AVX-512 without BF16: oneDNN emulates bf16
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI", False),
        ("ONEDNN_MAX_CPU_ISA", "AVX2_VNNI_2", False),
        ("DNNL_MAX_CPU_ISA", "AVX2", False),  # oneDNN's older name
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", True),
        ("ONEDNN_MAX_CPU_ISA", "AVX10_1_512_AMX", True),
        ("ONEDNN_MAX_CPU_ISA", "ALL", True),
        ("ONEDNN_MAX_CPU_ISA", "", True),
    ],
)
def test_a_pinned_onednn_isa_below_bf16_means_bf16_is_not_native(monkeypatch, variable, isa, native):
    """The one detection (embedding.models.bf16_is_native, also the neighbour search's) answers
    what a user of the pinned CPU class would get; a CPU without bf16 is never native."""
    import torch

    from spotreview.embedding.models import bf16_is_native, resolve_precision

    _cpu_reports(monkeypatch, avx512_bf16=True)
    monkeypatch.setenv(variable, isa)
    assert bf16_is_native(torch.device("cpu")) is native and bf16_is_native("cpu") is native
    assert resolve_precision("auto", torch.device("cpu")) is (torch.bfloat16 if native else None)
    _cpu_reports(monkeypatch, avx512_bf16=False)
    monkeypatch.setenv(variable, isa)
    assert bf16_is_native("cpu") is False


@pytest.mark.parametrize("isa, stage", [("AVX512_CORE", "fp32"), ("AVX512_CORE_BF16", "bf16")])
def test_the_search_takes_bf16_candidates_only_where_bf16_is_native(monkeypatch, isa, stage):
    from spotreview.analysis.outliers import BF16_MIN_ROWS

    _cpu_reports(monkeypatch, avx512_bf16=True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    x, _ = _clusters(BF16_MIN_ROWS, 8, seed=6)
    stats = {}
    cosine_knn(x, 10, device="cpu", stats=stats)
    assert stats.get(stage, 0) > 0 and ("bf16" in stats) is (stage == "bf16")
