"""``analyze``: per-snapshot outlier scores (cleanlab) and 2-D projections aligned into one frame.

For every snapshot (a step with ``embeddings/step-STEP.npy``, shape ``(n, dim)``):

* **outlier scores**: cleanlab ``OutOfDistribution`` on the embeddings, a new estimator per
  snapshot; scores lie in [0, 1] and a *lower* score means *more* atypical. Rank 1 is the
  most atypical image of that snapshot.
* **kNN accuracy**: leave-one-out 5-nearest-neighbour accuracy of the labels in embedding
  space (same cosine/euclidean metric cleanlab picks). It shares cleanlab's neighbour
  graph, so the expensive neighbour search runs once per snapshot
  (see ``_outlier_scores_and_knn_accuracy`` and :mod:`spotreview.analysis.outliers`).
* **accuracy**: argmax of ``step-STEP.probs.npy`` against the labels, when that file exists.
* **2-D PCA**, then every snapshot's frame aligned into one (:mod:`spotreview.analysis.projection`).
* **trustworthiness** of the 2-D PCA against the embedding's own 10 nearest neighbours (1 = the
  picture keeps them, ~0.5 = no better than random), estimated from cleanlab's neighbour lists
  (:mod:`spotreview.analysis.trust`).
* **training dynamics** of every image over all snapshots (data map, forgetting, margin,
  neighbour change: :mod:`spotreview.analysis.dynamics`), recomputed on every call from
  what each step file keeps (p(label), margin, prediction, neighbours): O(S * n).

Results are stored under ``RUN/analysis/`` (format, writing and reading back:
:mod:`spotreview.analysis.store`). Re-running ``analyze`` recomputes only snapshots whose
embeddings (or probs, or labels) changed or are new; the alignment is redone unless the
stored one was made the same way from the same embeddings; step files of snapshots that no
longer exist are deleted.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from spotreview.analysis import dynamics as dyn
from spotreview.analysis.projection import align_frames, pca_2d
from spotreview.analysis.store import (
    Analysis,
    assemble,
    read_aligned_frames,
    read_labels,
    read_step,
    source_digests,
    steps_text,
    write_analysis,
    write_step,
)
from spotreview.defaults import (
    ALIGN,
    ALIGN_MODES,
    CONFIDENCE_THRESHOLD,
    OOD_K,
    TOP_K,
    VARIABILITY_THRESHOLD,
    AlignMode,
)
from spotreview.errors import AnalysisError
from spotreview.rundir.atomic import sha256_bytes
from spotreview.rundir.run import Run

logger = logging.getLogger(__name__)

KNN_K = 5  # neighbours voting in the leave-one-out kNN accuracy


def analyze(
    run,
    *,
    align: AlignMode = ALIGN,
    top_k: int = TOP_K,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    variability_threshold: float = VARIABILITY_THRESHOLD,
    quiet: bool = False,
) -> Analysis:
    """Score, project and align every snapshot of every image set of ``run`` (the evaluation
    set and, when recorded, the training set); store them and return the result of the set
    ``run`` views (the evaluation set unless ``run`` is a ``Run(path, "train")`` view).

    Only snapshots whose embeddings changed since the last call are recomputed; the
    training dynamics are recomputed every time. ``confidence_threshold`` and
    ``variability_threshold`` draw the data map's regions (see
    :func:`spotreview.analysis.dynamics.data_map_region`). A failure (bad embeddings) leaves
    everything stored before it intact.
    """
    run = Run(run).require()
    _check_arguments(align, top_k)
    dyn.check_thresholds(confidence_threshold, variability_threshold)
    options = dict(
        align=align,
        top_k=int(top_k),
        confidence_threshold=confidence_threshold,
        variability_threshold=variability_threshold,
        quiet=quiet,
    )
    mine = _analyze_set(run, **options)
    for name in run.image_sets():
        if name != run.image_set:
            other = _analyze_set(run.for_set(name), **options)
            if not quiet:
                logger.info(
                    "%s set: %d images, %d snapshots (%d recomputed); results in %s",
                    name,
                    len(other.ids),
                    len(other.steps),
                    len(other.recomputed),
                    other.run.analysis_dir,
                )
    return mine


def _analyze_set(
    run: Run, *, align: str, top_k: int, confidence_threshold: float, variability_threshold: float, quiet: bool
) -> Analysis:
    """:func:`analyze` of the one image set ``run`` views."""
    from tqdm.auto import tqdm

    steps = run.require_snapshots()
    ids, labels, class_names = read_labels(run)
    _check_shapes(run, steps, len(ids))
    labels_digest = sha256_bytes(labels.astype("<i8").tobytes())

    results, recomputed = [], []
    all_digests = source_digests(run, steps, labels_digest)
    for step, digests in zip(tqdm(steps, desc=f"analyze {run.image_set}", unit="snapshot", disable=quiet), all_digests):
        stored = read_step(run, step, neighbours=step in (steps[0], steps[-1]))
        if stored is None or any(stored[key] != value for key, value in digests.items()):
            stored = _compute_step(run, step, labels, digests)
            write_step(run, step, stored)
            recomputed.append(step)
        results.append(stored)

    steps_arr = np.asarray(steps, dtype=np.int64)
    dynamics = _dynamics(results, labels, steps_arr, confidence_threshold, variability_threshold, quiet)
    embedding_digests = [r["embedding_digest"] for r in results]
    # Nothing recomputed: the stored frames are what aligning again would give (and a re-run
    # then need not import scipy).
    frames = None if recomputed else read_aligned_frames(run, steps_arr, embedding_digests, align)
    coords, disparity = frames or align_frames(np.stack([r["pca"] for r in results]), align)
    analysis = assemble(
        run, steps_arr, ids, labels, class_names, results, coords, disparity, align, int(top_k), dynamics=dynamics
    )
    analysis.recomputed = tuple(recomputed)
    write_analysis(analysis, results, knn_k=KNN_K)
    return analysis


def _dynamics(results: list[dict], labels, steps, confidence: float, variability: float, quiet: bool) -> dyn.Dynamics:
    """Every image's training dynamics from the step results; the probability columns only
    when every snapshot has probabilities (else one info line says why they are absent)."""
    columns = {"neighbour_change": dyn.neighbour_change(results[0]["neighbours"], results[-1]["neighbours"])}
    missing = [int(s) for s, r in zip(steps, results) if not len(r["predictions"])]
    if missing and not quiet:
        logger.info(
            "training dynamics: only neighbour_change; confidence, forgetting, margin and the data map "
            "need probabilities (embeddings/step-STEP.probs.npy) at every snapshot, missing at step(s) %s",
            steps_text(missing),
        )
    if not missing:
        columns = (
            dyn.probability_dynamics(
                np.stack([r["label_prob"] for r in results]),
                np.stack([r["margin"] for r in results]),
                np.stack([r["predictions"] for r in results]) == labels,
                steps,
                confidence_threshold=confidence,
                variability_threshold=variability,
            )
            | columns
        )
    return dyn.Dynamics(columns, float(confidence), float(variability))


def _check_arguments(align: str, top_k: int) -> None:
    if align not in ALIGN_MODES:
        raise AnalysisError(f"unknown alignment {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise AnalysisError(f"top_k must be a positive whole number, got {top_k!r}")


# --- per-snapshot computation ------------------------------------------------------------


def _compute_step(run: Run, step: int, labels: np.ndarray, digests: dict) -> dict:
    """One snapshot's results: ``digests`` plus scores (n,) float64, pca (n, 2) float64,
    accuracy, knn_accuracy and trustworthiness (float, accuracy NaN without probs, trustworthiness
    NaN below 2 * TRUST_K + 1 images), predictions (n,) int64, label_prob and margin (n,) float64
    (each (0,) without probs) and neighbours (n, OOD_K) int32."""
    from spotreview.analysis.trust import trustworthiness

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
    label_prob = margin = np.zeros(0, dtype=np.float64)
    accuracy = math.nan
    if run.probs_path(step).is_file():
        probs = run.load_array(run.probs_path(step))
        if probs.ndim != 2 or len(probs) != len(x):
            raise AnalysisError(
                f"probabilities of step {step} have shape {probs.shape}; expected "
                f"({len(x)}, n_classes); {run.reembed_hint(run.probs_path(step))}"
            )
        try:
            dyn.check_probs(probs, labels, f"probabilities of step {step}")
        except AnalysisError as e:
            raise AnalysisError(f"{e}; {run.reembed_hint(run.probs_path(step))}") from None
        predictions = probs.argmax(axis=1).astype(np.int64)
        accuracy = float((predictions == labels).mean())
        label_prob, margin = dyn.label_terms(probs, labels)

    scores, knn_accuracy, neighbours = _outlier_scores_and_knn_accuracy(x, labels)
    pca = pca_2d(x)
    return dict(
        digests,
        scores=scores,
        pca=pca,
        accuracy=accuracy,
        knn_accuracy=knn_accuracy,
        # From the raw PCA, yet true of the picture drawn: the alignment only rotates, reflects and
        # shifts a frame (its scale is kept), so the aligned frame has the same 2-D neighbours.
        trustworthiness=trustworthiness(x, neighbours, pca),
        predictions=predictions,
        neighbours=neighbours,
        label_prob=label_prob,
        margin=margin,
    )


def _outlier_scores_and_knn_accuracy(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """cleanlab OOD scores (n,) float64, leave-one-out kNN accuracy and the neighbour lists
    (n, OOD_K) int32 they come from, one neighbour search.

    The neighbour lists are those ``OutOfDistribution().fit_score(features=x)`` builds
    (cleanlab's metric, self excluded, exact duplicates corrected), found exactly by a
    blocked GEMM + top-k in torch (:mod:`spotreview.analysis.outliers`); the score is
    cleanlab's formula on their float64 distances: ``fit_score`` on the features in float64
    to 1e-9 (tests), on float32 features within its own float32 rounding. The kNN vote uses
    the first ``KNN_K`` of the same lists, ties to the smallest label as sklearn's
    KNeighborsClassifier breaks them.
    """
    from spotreview.analysis.outliers import cleanlab_neighbors, knn_accuracy, ood_scores

    distances, indices, metric = cleanlab_neighbors(x, OOD_K)
    return ood_scores(distances, metric), knn_accuracy(indices, labels, KNN_K), indices.astype(np.int32)


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
        raise AnalysisError(f"embeddings have {shape[0]} rows but {run.eval_csv.name} lists {n_eval} images; {fix}")
    if n_eval < OOD_K + 1:
        raise AnalysisError(
            f"only {n_eval} evaluation images; outlier scores compare each image with its "
            f"{OOD_K} nearest neighbours, so at least {OOD_K + 1} are needed"
        )
