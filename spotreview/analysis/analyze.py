"""Per-snapshot outlier scores (cleanlab) and 2-D projections aligned into one frame.

For every snapshot (a step with ``embeddings/step-STEP.npy``, shape ``(n, dim)``):

* **outlier scores**: cleanlab ``OutOfDistribution`` on the embeddings, a new estimator per
  snapshot; scores lie in [0, 1] and a *lower* score means *more* atypical. Rank 1 is the
  most atypical image of that snapshot.
* **kNN accuracy**: leave-one-out 5-nearest-neighbour accuracy of the labels in embedding
  space (same cosine/euclidean metric cleanlab picks). It shares cleanlab's neighbour
  graph, so the expensive neighbour search runs once per snapshot
  (see ``_outlier_scores_and_knn_accuracy`` and ``neighbors.py``).
* **accuracy**: argmax of ``step-STEP.probs.npy`` against the labels, when that file exists.
* **2-D PCA**: deterministic (sklearn's ``svd_solver="covariance_eigh"``, signs fixed as sklearn
  fixes them; only the two leading eigenvectors computed).

Then every snapshot's 2-D PCA is aligned into one shared frame of reference with a
rotation/reflection only (``scipy.linalg.orthogonal_procrustes`` on centred coordinates,
translated onto the reference's centre). Real scale is kept, so a snapshot whose classes
spread out is drawn bigger. This deliberately differs from the seed article, which used
``scipy.spatial.procrustes`` and thereby rescaled every frame to unit size. The disparity
recorded per frame is still the one ``scipy.spatial.procrustes`` reports (on standardised
copies; about 0 for a frame that is a rotated/reflected/scaled copy of its reference).
``align="last"`` (default) aligns every frame to the final one; ``"previous"`` chains each
frame onto the already aligned frame before it, starting from the first; ``"none"`` leaves
the raw PCA frames (disparity NaN: there is no reference).

Results are stored under ``RUN/analysis/`` (format and reading back:
:mod:`spotreview.analysis_store`). Re-running ``analyze`` recomputes only snapshots whose
embeddings (or probs, or labels) changed or are new; the alignment is redone unless the
stored one was made the same way from the same embeddings; step files of snapshots that no
longer exist are deleted.
"""

from __future__ import annotations

import math

import numpy as np

from spotreview.analysis.store import (
    FORMAT,
    Analysis,
    assemble,
    read_labels,
    read_step,
    savez,
    source_digests,
    steps_text,
)
from spotreview.defaults import ALIGN, ALIGN_MODES, OOD_K, TOP_K
from spotreview.errors import AnalysisError
from spotreview.rundir.atomic import sha256_bytes, write_json
from spotreview.rundir.run import Run

KNN_K = 5  # neighbours voting in the leave-one-out kNN accuracy


def analyze(run, *, align: str = ALIGN, top_k: int = TOP_K, quiet: bool = False) -> Analysis:
    """Score, project and align every snapshot of ``run``; store and return the result.

    Only snapshots whose embeddings changed since the last call are recomputed. A failure
    (bad embeddings) leaves everything stored before it intact.
    """
    from tqdm.auto import tqdm

    run = Run(run)
    if align not in ALIGN_MODES:
        raise AnalysisError(f"unknown alignment {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise AnalysisError(f"top_k must be a positive whole number, got {top_k!r}")
    steps = run.require_snapshots()
    ids, labels, class_names = read_labels(run)
    _check_shapes(run, steps, len(ids))
    labels_digest = sha256_bytes(labels.astype("<i8").tobytes())

    results, recomputed = [], []
    all_digests = source_digests(run, steps, labels_digest)
    for step, digests in zip(tqdm(steps, desc="analyze", unit="snapshot", disable=quiet), all_digests):
        stored = read_step(run, step)
        if stored is None or any(stored[key] != value for key, value in digests.items()):
            stored = _compute_step(run, step, labels, digests)
            recomputed.append(step)
        results.append(stored)

    steps_arr = np.asarray(steps, dtype=np.int64)
    embedding_digests = [r["embedding_digest"] for r in results]
    # Nothing recomputed: the stored frames are what aligning again would give (and a re-run
    # then skips importing scipy, ~0.14 s of its ~0.37 s at 10k x 6 here).
    frames = None if recomputed else _stored_frames(run, steps_arr, embedding_digests, align)
    coords, disparity = frames or align_frames(np.stack([r["pca"] for r in results]), align)
    analysis = assemble(run, steps_arr, ids, labels, class_names, results, coords, disparity, align, int(top_k))
    analysis.recomputed = tuple(recomputed)

    savez(
        run.analysis_dir / "aligned.npz",
        steps=steps_arr,
        coords=coords,
        disparity=disparity,
        align=np.str_(align),
        top_k=np.int64(top_k),
        digests=np.array(embedding_digests),
        format=np.int64(FORMAT),
    )
    write_json(run.analysis_dir / "summary.json", _summary(analysis))
    # Only now, with the new results in place, drop files of snapshots that are gone.
    for path in run.analysis_dir.glob("step-*.npz"):
        if path.stem.removeprefix("step-") not in {str(s) for s in steps}:
            path.unlink()
    return analysis


def align_frames(raw: np.ndarray, align: str = ALIGN) -> tuple[np.ndarray, np.ndarray]:
    """Rotate/reflect 2-D frames into one frame of reference, keeping their real scale.

    ``raw``: (S, n, 2) float. Returns ``coords`` (S, n, 2) float32 and ``disparity`` (S,)
    float64 as ``scipy.spatial.procrustes`` reports it against each frame's reference
    ("last": the final frame; "previous": the already-aligned frame before, the first frame
    is its own reference; "none": frames untouched, disparity NaN).
    """
    from scipy.linalg import orthogonal_procrustes
    from scipy.spatial import procrustes

    if align not in ALIGN_MODES:
        raise AnalysisError(f"unknown alignment {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    raw = np.asarray(raw, dtype=np.float64)
    aligned = raw.copy()
    disparity = np.full(len(raw), np.nan)
    if align == "none":
        return aligned.astype(np.float32), disparity
    for i in range(len(raw)):
        if align == "last":
            ref = raw[-1]
        else:
            ref = aligned[i - 1] if i > 0 else raw[0]
        centred, ref_centre = raw[i] - raw[i].mean(0), ref.mean(0)
        rotation, _ = orthogonal_procrustes(centred, ref - ref_centre)
        aligned[i] = centred @ rotation + ref_centre
        try:
            disparity[i] = procrustes(ref, raw[i])[2]
        except ValueError:  # a frame whose points all coincide has no shape to compare
            disparity[i] = np.nan
    return aligned.astype(np.float32), disparity


def _stored_frames(run: Run, steps: np.ndarray, digests: list[str], align: str):
    """``(coords, disparity)`` from ``aligned.npz`` if it was aligned (``align``) from exactly
    these steps' embeddings (their digests); else None."""
    import zipfile

    try:
        with np.load(run.analysis_dir / "aligned.npz", allow_pickle=False) as f:
            same = (
                int(f["format"]) == FORMAT
                and str(f["align"]) == align
                and np.array_equal(f["steps"], steps)
                and f["digests"].tolist() == digests
            )
            return (f["coords"], f["disparity"]) if same else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


# --- per-snapshot computation ------------------------------------------------------------


def _compute_step(run: Run, step: int, labels: np.ndarray, digests: dict) -> dict:
    x = run.load_array(run.embedding_path(step))
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    bad = int((~np.isfinite(x).all(axis=1)).sum())
    if bad:
        raise AnalysisError(
            f"embeddings of step {step} have NaN/inf values in {bad} of {len(x)} rows; "
            f"{run.reembed_hint(run.embedding_path(step))}"
        )
    predictions = np.zeros(0, dtype=np.int64)
    accuracy = math.nan
    if run.probs_path(step).is_file():
        probs = run.load_array(run.probs_path(step))
        if probs.ndim != 2 or len(probs) != len(x):
            raise AnalysisError(
                f"probabilities of step {step} have shape {probs.shape}; expected "
                f"({len(x)}, n_classes); {run.reembed_hint(run.probs_path(step))}"
            )
        predictions = probs.argmax(axis=1).astype(np.int64)
        accuracy = float((predictions == labels).mean())

    scores, knn_accuracy = _outlier_scores_and_knn_accuracy(x, labels)
    pca = _pca_2d(x)

    result = dict(
        digests,
        scores=scores,
        pca=pca,
        accuracy=accuracy,
        knn_accuracy=knn_accuracy,
        predictions=predictions,
    )
    savez(
        run.analysis_dir / f"step-{step}.npz",
        step=np.int64(step),
        format=np.int64(FORMAT),
        **{key: np.str_(value) for key, value in digests.items()},
        scores=scores,
        pca=pca,
        accuracy=np.float64(accuracy),
        knn_accuracy=np.float64(knn_accuracy),
        predictions=predictions,
    )
    return result


def _outlier_scores_and_knn_accuracy(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """cleanlab OOD scores (n,) float64 and leave-one-out kNN accuracy, one neighbour search.

    The neighbour lists are those ``OutOfDistribution().fit_score(features=x)`` builds
    (cleanlab's metric, self excluded, exact duplicates corrected), found exactly by a
    blocked GEMM + top-k in torch (``neighbors.py``); the score is cleanlab's formula on
    their float64 distances: ``fit_score`` on the features in float64 to 1e-9 (tests), on
    float32 features within its own float32 rounding (1e-7 to a few 1e-6 on tight clusters).
    The kNN vote uses the first ``KNN_K`` of the same lists, ties to the smallest label as
    sklearn's KNeighborsClassifier breaks them.
    """
    from spotreview.analysis.outliers import cleanlab_neighbors, knn_accuracy, ood_scores

    distances, indices, metric = cleanlab_neighbors(x, OOD_K)
    return ood_scores(distances, metric), knn_accuracy(indices, labels, KNN_K)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """(n, 2) float64 PCA coordinates, as ``PCA(2, svd_solver="covariance_eigh").fit_transform``.

    sklearn's covariance-eigh solver written out (no randomness, signs fixed the way sklearn's
    ``svd_flip`` fixes them), which spares every ``analyze`` process the ~0.8 s import of
    ``sklearn.decomposition``; but only the two leading eigenvectors are computed (LAPACK
    ``syevr`` with a subset: 12 ms instead of 66 ms for all 768 at dim 768). A test checks the
    result against sklearn's to float rounding.
    """
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    n, dim = x.shape
    mean = x.mean(axis=0)
    cov = x.T @ x  # the (dim, dim) GEMM on all of BLAS's threads (0.24 s on one thread at 50k x 768 here)
    cov -= n * mean[:, None] * mean[None, :]
    cov /= n - 1
    # Multi-threaded OpenBLAS eigh stalls badly when the cores are busy (measured 0.2 s ->
    # 13 s at 10k x 768 on 2 shared cores); on one thread it never stalls.
    with threadpool_limits(limits=1, user_api="blas"):
        _, vectors = eigh(cov, subset_by_index=[dim - 2, dim - 1])
    components = vectors[:, ::-1].T  # largest eigenvalue first
    signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
    components = components * signs[:, None]
    coords = x @ components.T
    coords -= mean[None, :] @ components.T
    return coords.astype(np.float64)


def _check_shapes(run: Run, steps: list[int], n_eval: int) -> None:
    """Check every embedding file's header (no data read): same 2-D shape, rows = eval images."""
    shapes = {step: run.load_array(run.embedding_path(step), mmap=True).shape for step in steps}
    by_shape: dict[tuple, list[int]] = {}
    for step, shape in shapes.items():
        by_shape.setdefault(shape, []).append(step)
    fix = run.reembed_hint(run.embeddings_dir)
    if len(by_shape) > 1:
        groups = "; ".join(
            f"{shape} at step{'s' if len(s) > 1 else ''} {steps_text(s)}" for shape, s in by_shape.items()
        )
        raise AnalysisError(
            f"embeddings differ in shape between snapshots: {groups}; every snapshot must "
            f"embed the same images to the same dimension; {fix}"
        )
    (shape,) = by_shape
    if len(shape) != 2 or shape[1] < 2:
        raise AnalysisError(f"embeddings have shape {shape}; expected (n_images, dim) with dim >= 2; {fix}")
    if shape[0] != n_eval:
        raise AnalysisError(f"embeddings have {shape[0]} rows but eval.csv lists {n_eval} images; {fix}")
    if n_eval < OOD_K + 1:
        raise AnalysisError(
            f"only {n_eval} evaluation images; outlier scores compare each image with its "
            f"{OOD_K} nearest neighbours, so at least {OOD_K + 1} are needed"
        )


def _summary(analysis: Analysis) -> dict:
    def finite(x: float):
        return float(x) if np.isfinite(x) else None  # JSON has no NaN

    return {
        "align": analysis.align,
        "top_k": analysis.top_k,
        "ood_k": OOD_K,
        "knn_k": KNN_K,
        "num_images": len(analysis.ids),
        "snapshots": [
            {
                "step": int(step),
                "accuracy": finite(analysis.accuracy[s]),
                "knn_accuracy": finite(analysis.knn_accuracy[s]),
                "disparity": finite(analysis.disparity[s]),
                "top": [analysis.ids[i] for i in analysis.top(s)],
            }
            for s, step in enumerate(analysis.steps)
        ],
    }
