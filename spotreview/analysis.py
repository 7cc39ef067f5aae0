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
* **2-D PCA**: deterministic (``svd_solver="covariance_eigh"``, signs fixed by sklearn).

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

Stored under ``RUN/analysis/`` (all written atomically)::

    step-STEP.npz    per snapshot: step, format, embedding_digest, probs_digest ("" without
                     probs), labels_digest (sha256 hex of the sources it was computed from),
                     scores (n,) float64, pca (n, 2) float64 raw (unaligned) PCA,
                     accuracy, knn_accuracy (float64 scalars, accuracy NaN without probs),
                     predictions (n,) int64 argmax of probs, or (0,) without probs
    aligned.npz      steps (S,) int64, coords (S, n, 2) float32, disparity (S,) float64,
                     align (str), top_k, digests (S,) embedding digests the frames were built from
    summary.json     align, top_k, per snapshot: step, accuracy, knn_accuracy, disparity,
                     top (ids of the top_k most atypical images)

Re-running ``analyze`` recomputes only snapshots whose embeddings (or probs, or labels)
changed or are new; alignment is cheap and redone every time; step files of snapshots
that no longer exist are deleted.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .errors import AnalysisError
from .rundir import Run, atomic_path, sha256_bytes, sha256_file, write_json

ALIGN_MODES = ("last", "previous", "none")
OOD_K = 10  # neighbours per image for cleanlab's outlier score (cleanlab's default)
KNN_K = 5  # neighbours voting in the leave-one-out kNN accuracy
_FORMAT = 1  # bump when the stored layout changes; older step files are then recomputed


@dataclass
class Analysis:
    """Everything ``analyze`` computed for a run, snapshots ordered by step number."""

    run: Run
    steps: np.ndarray  # (S,) int64, ascending by number
    ids: list[str]  # (n,) eval image ids, row order of every embedding file
    labels: np.ndarray  # (n,) int64 class index
    class_names: list[str]
    scores: np.ndarray  # (S, n) float64 cleanlab OOD score; LOWER = MORE atypical
    ranks: np.ndarray  # (S, n) int64; 1 = most atypical at that snapshot
    coords: np.ndarray  # (S, n, 2) float32 aligned 2-D PCA, one shared frame of reference
    disparity: np.ndarray  # (S,) float64 Procrustes disparity vs its reference, NaN for "none"
    accuracy: np.ndarray  # (S,) float64 eval accuracy from probs, NaN where no probs
    knn_accuracy: np.ndarray  # (S,) float64 leave-one-out kNN accuracy of the embeddings
    predictions: np.ndarray | None  # (S, n) int64 argmax of probs; None unless every snapshot has probs
    align: str  # "last" | "previous" | "none"
    top_k: int
    recomputed: tuple[int, ...] = ()  # steps (re)computed by the call that returned this; () from load_analysis

    def top(self, snapshot: int, k: int | None = None, exclude: Iterable[str] = ()) -> np.ndarray:
        """Row indices (int64) of the k lowest scores at snapshot index ``snapshot`` (negative
        counts from the end), most atypical first, skipping rows whose id is in ``exclude``."""
        k = self.top_k if k is None else k
        skip = set(exclude)
        order = np.argsort(self.scores[snapshot], kind="stable")
        keep = [i for i in order if self.ids[i] not in skip] if skip else order
        return np.asarray(keep[:k], dtype=np.int64)


# --- public API --------------------------------------------------------------------------


def analyze(run, *, align: str = "last", top_k: int = 8, quiet: bool = False) -> Analysis:
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
    ids, labels, class_names = _read_eval(run)
    _check_shapes(run, steps, len(ids))
    labels_digest = sha256_bytes(labels.astype("<i8").tobytes())

    results, recomputed = [], []
    for step in tqdm(steps, desc="analyze", unit="snapshot", disable=quiet):
        digests = _source_digests(run, step, labels_digest)
        stored = _read_step(run, step)
        if stored is None or any(stored[key] != value for key, value in digests.items()):
            stored = _compute_step(run, step, labels, digests)
            recomputed.append(step)
        results.append(stored)

    raw = np.stack([r["pca"] for r in results])
    coords, disparity = align_frames(raw, align)
    steps_arr = np.asarray(steps, dtype=np.int64)
    analysis = _assemble(
        run, steps_arr, ids, labels, class_names, results, coords, disparity, align, int(top_k)
    )
    analysis.recomputed = tuple(recomputed)

    _savez(
        run.analysis_dir / "aligned.npz",
        steps=steps_arr,
        coords=coords,
        disparity=disparity,
        align=np.str_(align),
        top_k=np.int64(top_k),
        digests=np.array([r["embedding_digest"] for r in results]),
        format=np.int64(_FORMAT),
    )
    write_json(run.analysis_dir / "summary.json", _summary(analysis))
    # Only now, with the new results in place, drop files of snapshots that are gone.
    for path in run.analysis_dir.glob("step-*.npz"):
        if path.stem.removeprefix("step-") not in {str(s) for s in steps}:
            path.unlink()
    return analysis


def load_analysis(run) -> Analysis:
    """The stored analysis of ``run``; AnalysisError if it is missing or out of date."""
    run = Run(run)
    again = f"run `spotreview analyze {run.root}` first"
    aligned_path, summary_path = run.analysis_dir / "aligned.npz", run.analysis_dir / "summary.json"
    if not aligned_path.is_file() or not summary_path.is_file():
        raise AnalysisError(f"{run.root} has no analysis; {again}")
    with np.load(aligned_path, allow_pickle=False) as f:
        aligned = {key: f[key] for key in f.files}
    if int(aligned.get("format", -1)) != _FORMAT:
        raise AnalysisError(f"the analysis of {run.root} was stored by another spotreview version; {again}")
    steps = [int(s) for s in aligned["steps"]]
    now = run.snapshots()
    if now != steps:
        raise AnalysisError(
            f"the analysis covers steps {_steps_text(steps)} but embeddings now exist for "
            f"steps {_steps_text(now)}; {again}"
        )
    ids, labels, class_names = _read_eval(run)
    labels_digest = sha256_bytes(labels.astype("<i8").tobytes())
    results = []
    for step, frame_digest in zip(steps, aligned["digests"]):
        stored = _read_step(run, step)
        if stored is None:
            raise AnalysisError(f"analysis of step {step} is missing; {again}")
        current = _source_digests(run, step, labels_digest)
        if stored["labels_digest"] != labels_digest:
            raise AnalysisError(f"labels in eval.csv changed since the analysis; {again}")
        for key, what in (("embedding_digest", "embeddings"), ("probs_digest", "probabilities")):
            if stored[key] != current[key]:
                raise AnalysisError(f"{what} of step {step} changed since the analysis; {again}")
        if stored["embedding_digest"] != str(frame_digest):
            raise AnalysisError(
                f"aligned coordinates of step {step} are older than its scores (an analyze "
                f"was interrupted); {again}"
            )
        results.append(stored)
    return _assemble(
        run,
        aligned["steps"].astype(np.int64),
        ids,
        labels,
        class_names,
        results,
        aligned["coords"],
        aligned["disparity"],
        str(aligned["align"]),
        int(aligned["top_k"]),
    )


def analysis_digest(run) -> str:
    """sha256 hex over the stored analysis files (name and content, sorted by name)."""
    run = Run(run)
    h = hashlib.sha256()
    if run.analysis_dir.is_dir():
        for path in sorted(run.analysis_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".tmp-"):
                h.update(path.name.encode() + b"\0")
                h.update(sha256_file(path).encode() + b"\n")
    return h.hexdigest()


def align_frames(raw: np.ndarray, align: str = "last") -> tuple[np.ndarray, np.ndarray]:
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


def format_table(analysis: Analysis) -> str:
    """A short per-snapshot table: step, accuracy, kNN accuracy, disparity, worst outlier."""

    def num(x: float) -> str:
        return "-" if not np.isfinite(x) else f"{x:.3f}"

    header = ("step", "accuracy", "kNN acc", "disparity", "worst outlier (score)")
    rows = [header]
    for s, step in enumerate(analysis.steps):
        worst = int(analysis.top(s, 1)[0])
        rows.append(
            (
                str(step),
                num(analysis.accuracy[s]),
                num(analysis.knn_accuracy[s]),
                num(analysis.disparity[s]),
                f"{analysis.ids[worst]} ({analysis.scores[s, worst]:.3f})",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) if c < 4 else cell for c, (cell, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    )


# --- per-snapshot computation ------------------------------------------------------------


def _compute_step(run: Run, step: int, labels: np.ndarray, digests: dict) -> dict:
    x = np.load(run.embedding_path(step), allow_pickle=False)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    bad = int((~np.isfinite(x).all(axis=1)).sum())
    if bad:
        raise AnalysisError(
            f"embeddings of step {step} have NaN/inf values in {bad} of {len(x)} rows; "
            f"re-run `spotreview embed {run.root}`"
        )
    predictions = np.zeros(0, dtype=np.int64)
    accuracy = math.nan
    if run.probs_path(step).is_file():
        probs = np.load(run.probs_path(step), allow_pickle=False)
        if probs.ndim != 2 or len(probs) != len(x):
            raise AnalysisError(
                f"probabilities of step {step} have shape {probs.shape}; expected "
                f"({len(x)}, n_classes); re-run `spotreview embed {run.root}`"
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
    _savez(
        run.analysis_dir / f"step-{step}.npz",
        step=np.int64(step),
        format=np.int64(_FORMAT),
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
    from .neighbors import cleanlab_neighbors, knn_accuracy, ood_scores

    distances, indices, metric = cleanlab_neighbors(x, OOD_K)
    return ood_scores(distances, metric), knn_accuracy(indices, labels, KNN_K)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """(n, 2) float64 PCA coordinates; covariance_eigh has no randomness and sklearn fixes signs."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    # Multi-threaded OpenBLAS eigh stalls badly when the cores are busy (measured 0.2 s ->
    # 13 s at 10k x 768 on 2 shared cores); one thread costs ~0.25 s and never stalls.
    with threadpool_limits(limits=1, user_api="blas"):
        return PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(x).astype(np.float64)


# --- reading, checking, storing ----------------------------------------------------------


def _read_eval(run: Run) -> tuple[list[str], np.ndarray, list[str]]:
    table = run.read_eval()
    ids = table["id"].astype(str).tolist()
    labels = table["label"].to_numpy(dtype=np.int64)
    class_names = None
    if run.manifest.is_file():
        class_names = run.read_manifest().get("class_names")
    if not class_names:
        names = dict(zip(table["label"], table["class_name"].astype(str)))
        class_names = [names.get(k, str(k)) for k in range(int(labels.max()) + 1)] if len(labels) else []
    return ids, labels, list(class_names)


def _check_shapes(run: Run, steps: list[int], n_eval: int) -> None:
    """Check every embedding file's header (no data read): same 2-D shape, rows = eval images."""
    shapes = {}
    for step in steps:
        try:
            shapes[step] = np.load(run.embedding_path(step), mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as e:
            raise AnalysisError(
                f"cannot read {run.embedding_path(step)} ({e}); re-run `spotreview embed {run.root}`"
            ) from None
    by_shape: dict[tuple, list[int]] = {}
    for step, shape in shapes.items():
        by_shape.setdefault(shape, []).append(step)
    fix = f"re-run `spotreview embed {run.root}`"
    if len(by_shape) > 1:
        groups = "; ".join(f"{shape} at step{'s' if len(s) > 1 else ''} {_steps_text(s)}" for shape, s in by_shape.items())
        raise AnalysisError(
            f"embeddings differ in shape between snapshots: {groups}; every snapshot must "
            f"embed the same images to the same dimension; {fix}"
        )
    (shape,) = by_shape
    if len(shape) != 2 or shape[1] < 2:
        raise AnalysisError(f"embeddings have shape {shape}; expected (n_images, dim) with dim >= 2; {fix}")
    if shape[0] != n_eval:
        raise AnalysisError(
            f"embeddings have {shape[0]} rows but eval.csv lists {n_eval} images; {fix}"
        )
    if n_eval < OOD_K + 1:
        raise AnalysisError(
            f"only {n_eval} evaluation images; outlier scores compare each image with its "
            f"{OOD_K} nearest neighbours, so at least {OOD_K + 1} are needed"
        )


def _source_digests(run: Run, step: int, labels_digest: str) -> dict[str, str]:
    probs = run.probs_path(step)
    return {
        "embedding_digest": sha256_file(run.embedding_path(step)),
        "probs_digest": sha256_file(probs) if probs.is_file() else "",
        "labels_digest": labels_digest,
    }


def _read_step(run: Run, step: int) -> dict | None:
    """A stored step file as a dict, or None if missing, unreadable or of another format."""
    path = run.analysis_dir / f"step-{step}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if int(f["format"]) != _FORMAT:
                return None
            return {
                "embedding_digest": str(f["embedding_digest"]),
                "probs_digest": str(f["probs_digest"]),
                "labels_digest": str(f["labels_digest"]),
                "scores": f["scores"],
                "pca": f["pca"],
                "accuracy": float(f["accuracy"]),
                "knn_accuracy": float(f["knn_accuracy"]),
                "predictions": f["predictions"],
            }
    except (OSError, ValueError, KeyError):
        return None


def _assemble(run, steps, ids, labels, class_names, results, coords, disparity, align, top_k) -> Analysis:
    scores = np.stack([r["scores"] for r in results]).astype(np.float64)
    ranks = np.empty(scores.shape, dtype=np.int64)
    for s, row in enumerate(scores):
        ranks[s, np.argsort(row, kind="stable")] = np.arange(1, len(row) + 1)
    # All or nothing: a -1 placeholder would silently index the last class name downstream.
    predictions = None
    if all(len(r["predictions"]) for r in results):
        predictions = np.stack([r["predictions"] for r in results]).astype(np.int64)
    return Analysis(
        run=run,
        steps=np.asarray(steps, dtype=np.int64),
        ids=ids,
        labels=labels,
        class_names=class_names,
        scores=scores,
        ranks=ranks,
        coords=np.asarray(coords, dtype=np.float32),
        disparity=np.asarray(disparity, dtype=np.float64),
        accuracy=np.array([r["accuracy"] for r in results], dtype=np.float64),
        knn_accuracy=np.array([r["knn_accuracy"] for r in results], dtype=np.float64),
        predictions=predictions,
        align=align,
        top_k=top_k,
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


def _savez(path: os.PathLike, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _steps_text(steps: Iterable[int]) -> str:
    steps = list(steps)
    return ", ".join(str(s) for s in steps) if steps else "none"
