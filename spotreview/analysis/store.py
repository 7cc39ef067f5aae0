"""The stored result of ``analyze``: the :class:`Analysis` record and its files on disk.

This module is the one that writes and reads every file under ``RUN/analysis/`` (all
written atomically)::

    step-STEP.npz    per snapshot: step, format, embedding_digest, probs_digest ("" without
                     probs), labels_digest (sha256 hex of the sources it was computed from),
                     scores (n,) float64, pca (n, 2) float64 raw (unaligned) PCA,
                     accuracy, knn_accuracy, trustworthiness (float64 scalars; accuracy NaN
                     without probs, trustworthiness NaN below 2 * TRUST_K + 1 images),
                     predictions (n,) int64 argmax of probs, or (0,) without probs,
                     neighbours (n, OOD_K) int32 the high-D neighbours of cleanlab's score,
                     label_prob, margin (n,) float64 p(label) and p(label) - max other p,
                     or (0,) without probs (:mod:`spotreview.analysis.dynamics`)
    dynamics.npz     format, sources (sha256 hex over every step file's digests, in step
                     order), confidence_threshold, variability_threshold (float64), and one
                     (n,) array per dynamics column (``data_map_region`` as str); without
                     probabilities in every snapshot only ``neighbour_change``
    aligned.npz      steps (S,) int64, coords (S, n, 2) float32, disparity (S,) float64,
                     align (str), top_k, digests (S,) embedding digests the frames were built
                     from, format
    summary.json     align, top_k, ood_k, knn_k, trust_k, num_images, data_map (the two
                     thresholds and the images per region, regions null without probs), per
                     snapshot: step, accuracy, knn_accuracy, trustworthiness, disparity, top
                     (ids of the top_k most atypical images)

:func:`load_analysis` checks every source digest, so a stored analysis is only returned
while it matches the embeddings, probabilities and labels it was computed from. Load it
once and hand the :class:`Analysis` on (``approval_status``, ``run_status`` take it), since
the check hashes every embedding file.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spotreview.analysis.dynamics import COLUMNS, REGIONS, Dynamics
from spotreview.defaults import OOD_K, TRUST_K
from spotreview.errors import AnalysisError, first_line
from spotreview.rundir.atomic import atomic_path, sha256_bytes, sha256_file, write_json
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.run import Run

FORMAT = 3  # bump when the stored layout changes; older step files are then recomputed
DIGEST_KEYS = ("embedding_digest", "probs_digest", "labels_digest")  # what a step file was computed from
METRICS = ("accuracy", "knn_accuracy", "trustworthiness")  # a step file's float64 scalars


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
    trustworthiness: np.ndarray  # (S,) float64 in [0, 1] of the 2-D picture (analysis/trust.py), NaN: too few images
    predictions: np.ndarray | None  # (S, n) int64 argmax of probs; None unless every snapshot has probs
    align: str  # "last" | "previous" | "none"
    top_k: int
    dynamics: Dynamics = field(default_factory=Dynamics)  # per-image training dynamics and data-map thresholds
    recomputed: tuple[int, ...] = ()  # steps (re)computed by the call that returned this; () from load_analysis

    def top(self, snapshot: int, k: int | None = None, exclude: Iterable[str] = ()) -> np.ndarray:
        """Row indices (int64) of the k lowest scores at snapshot index ``snapshot`` (negative
        counts from the end), most atypical first, skipping rows whose id is in ``exclude``."""
        k = self.top_k if k is None else k
        skip = set(exclude)
        order = np.argsort(self.scores[snapshot], kind="stable")
        keep = [i for i in order if self.ids[i] not in skip] if skip else order
        return np.asarray(keep[:k], dtype=np.int64)


def load_analysis(run) -> Analysis:
    """The stored analysis of ``run``; AnalysisError if it is missing or out of date."""
    run = Run(run)
    again = f"run `spotreview analyze {run.root}` first"
    aligned_path, summary_path = result_files(run)
    if not aligned_path.is_file() or not summary_path.is_file():
        raise AnalysisError(f"{run.root} has no analysis; {again}")
    aligned = _read_npz(aligned_path, again)
    missing = {"format", "steps", "digests", "coords", "disparity", "align", "top_k"} - set(aligned)
    if missing - {"format"}:
        raise AnalysisError(f"{aligned_path} lacks {', '.join(sorted(missing))}; {again}")
    if int(aligned.get("format", -1)) != FORMAT:
        raise AnalysisError(f"the analysis of {run.root} was stored by another spotreview version; {again}")
    steps = [int(s) for s in aligned["steps"]]
    now = run.snapshots()
    if now != steps:
        raise AnalysisError(
            f"the analysis covers steps {steps_text(steps)} but embeddings now exist for "
            f"steps {steps_text(now)}; {again}"
        )
    ids, labels, class_names = read_labels(run)
    labels_digest = sha256_bytes(labels.astype("<i8").tobytes())
    results = []
    for step, frame_digest, current in zip(steps, aligned["digests"], source_digests(run, steps, labels_digest)):
        stored = read_step(run, step, neighbours=False)
        if stored is None:
            raise AnalysisError(f"analysis of step {step} is missing; {again}")
        if stored["labels_digest"] != labels_digest:
            raise AnalysisError(f"labels in {run.eval_csv.name} changed since the analysis; {again}")
        for key, what in (("embedding_digest", "embeddings"), ("probs_digest", "probabilities")):
            if stored[key] != current[key]:
                raise AnalysisError(f"{what} of step {step} changed since the analysis; {again}")
        if stored["embedding_digest"] != str(frame_digest):
            raise AnalysisError(
                f"aligned coordinates of step {step} are older than its scores (an analyze was interrupted); {again}"
            )
        results.append(stored)
    return assemble(
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
        dynamics=_read_dynamics(run, results, again),
    )


def _read_npz(path: Path, again: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise AnalysisError(f"{path} is missing; {again}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # truncated, empty, garbage
        raise AnalysisError(f"{path} is unreadable ({first_line(e)}); {again}") from None


def _read_dynamics(run: Run, results: list[dict], again: str) -> Dynamics:
    """``dynamics.npz``, checked to come from exactly these step results."""
    path = _dynamics_path(run)
    stored = _read_npz(path, again)
    if {"format", "sources", "confidence_threshold", "variability_threshold"} - set(stored):
        raise AnalysisError(f"{path} lacks its format, sources or thresholds; {again}")
    if int(stored["format"]) != FORMAT or str(stored["sources"]) != _sources(results):
        raise AnalysisError(f"{path} is older than the analysis of the snapshots (an analyze was interrupted); {again}")
    columns = {name: stored[name] for name in COLUMNS if name in stored}
    if "data_map_region" in columns:
        columns["data_map_region"] = columns["data_map_region"].astype(object)
    return Dynamics(columns, float(stored["confidence_threshold"]), float(stored["variability_threshold"]))


def _dynamics_path(run: Run) -> Path:
    return run.analysis_dir / "dynamics.npz"


def _sources(results: list[dict]) -> str:
    """sha256 hex over the digests every step result was computed from, in step order."""
    return sha256_bytes("\n".join(r[key] for r in results for key in DIGEST_KEYS).encode())


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


def read_labels(run: Run) -> tuple[list[str], np.ndarray, list[str]]:
    table = read_eval_columns(run, paths=False)  # no image is opened here
    ids, labels = table["id"], table["label"]
    class_names = None
    if run.manifest.is_file():
        class_names = run.read_manifest().get("class_names")
    if not class_names:
        names = {label: name for label, name in zip(labels.tolist(), table["class_name"]) if name}
        class_names = [names.get(k, str(k)) for k in range(int(labels.max()) + 1)] if len(labels) else []
    return ids, labels, list(class_names)


def source_digests(run: Run, steps: Iterable[int], labels_digest: str) -> list[dict[str, str]]:
    """What each step's analysis is computed from, as sha256 hex digests: one dict per step.

    The files are hashed by several threads (hashlib lets go of the GIL while it hashes): at
    100k x 768 each snapshot's embeddings are 300 MB.
    """
    steps = list(steps)
    files = [run.embedding_path(s) for s in steps]
    probs = [run.probs_path(s) for s in steps]
    files += [p for p in probs if p.is_file()]
    with ThreadPoolExecutor(max(1, min(len(files), os.cpu_count() or 1))) as pool:
        digest = dict(zip(files, pool.map(sha256_file, files)))
    return [
        {
            "embedding_digest": digest[run.embedding_path(s)],
            "probs_digest": digest.get(p, ""),
            "labels_digest": labels_digest,
        }
        for s, p in zip(steps, probs)
    ]


def read_step(run: Run, step: int, *, neighbours: bool = True) -> dict | None:
    """A stored step file as a dict, or None if missing, unreadable or of another format;
    without ``neighbours`` the neighbour lists are not read (only the first and the last
    snapshot's are ever needed)."""
    path = run.analysis_dir / f"step-{step}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if int(f["format"]) != FORMAT:
                return None
            return {
                **{key: str(f[key]) for key in DIGEST_KEYS},
                **{key: float(f[key]) for key in METRICS},
                **{key: f[key] for key in ("scores", "pca", "predictions", "label_prob", "margin")},
                **({"neighbours": f["neighbours"]} if neighbours else {}),
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # recomputed by analyze: a corrupt cache never blocks its own repair


def write_step(run: Run, step: int, result: dict) -> None:
    """``step-STEP.npz`` from one snapshot's result (the dict :func:`read_step` returns)."""
    _savez(
        run.analysis_dir / f"step-{step}.npz",
        step=np.int64(step),
        format=np.int64(FORMAT),
        **{key: np.str_(result[key]) for key in DIGEST_KEYS},
        scores=result["scores"],
        pca=result["pca"],
        **{key: np.float64(result[key]) for key in METRICS},
        predictions=result["predictions"],
        neighbours=np.asarray(result["neighbours"], dtype=np.int32),
        label_prob=np.asarray(result["label_prob"], dtype=np.float64),
        margin=np.asarray(result["margin"], dtype=np.float64),
    )


def read_aligned_frames(run: Run, steps: np.ndarray, digests: list[str], align: str):
    """``(coords, disparity)`` from ``aligned.npz`` if it was aligned (``align``) from exactly
    these steps' embeddings (their digests); else None."""
    try:
        with np.load(result_files(run)[0], allow_pickle=False) as f:
            same = (
                int(f["format"]) == FORMAT
                and str(f["align"]) == align
                and np.array_equal(f["steps"], steps)
                and f["digests"].tolist() == digests
            )
            return (f["coords"], f["disparity"]) if same else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def result_files(run: Run) -> tuple[Path, Path]:
    """``aligned.npz`` and ``summary.json``: written last by every ``analyze``, so a change of
    either means a new analysis (what a live review watches)."""
    return run.analysis_dir / "aligned.npz", run.analysis_dir / "summary.json"


def read_summary_text(run: Run) -> str:
    """``summary.json`` as written (per-snapshot metrics and top-k ids), for a review bundle."""
    return result_files(run)[1].read_text(encoding="utf-8")


def write_analysis(analysis: Analysis, results: list[dict], *, knn_k: int) -> None:
    """``dynamics.npz``, ``aligned.npz`` and ``summary.json`` of ``analysis`` (whose step files
    are written), then the removal of step files of snapshots that are gone: only once the new
    results are in place.

    ``results``: (S,) the step results (:func:`read_step`'s dicts) it was assembled from;
    ``knn_k``: the neighbours of the kNN accuracy, recorded in the summary."""
    run = analysis.run
    steps = analysis.steps
    aligned, summary = result_files(run)
    dyn = analysis.dynamics
    columns = {k: (v.astype(str) if k == "data_map_region" else v) for k, v in dyn.columns.items()}
    _savez(
        _dynamics_path(run),
        format=np.int64(FORMAT),
        sources=np.str_(_sources(results)),
        confidence_threshold=np.float64(dyn.confidence_threshold),
        variability_threshold=np.float64(dyn.variability_threshold),
        **columns,
    )
    embedding_digests = [r["embedding_digest"] for r in results]
    _savez(
        aligned,
        steps=steps,
        coords=analysis.coords,
        disparity=analysis.disparity,
        align=np.str_(analysis.align),
        top_k=np.int64(analysis.top_k),
        digests=np.array(embedding_digests),
        format=np.int64(FORMAT),
    )
    write_json(summary, _summary(analysis, knn_k))
    kept = {str(s) for s in steps.tolist()}
    for path in run.analysis_dir.glob("step-*.npz"):
        if path.stem.removeprefix("step-") not in kept:
            path.unlink()


def _summary(analysis: Analysis, knn_k: int) -> dict:
    def finite(x: float):
        return float(x) if np.isfinite(x) else None  # JSON has no NaN

    return {
        "align": analysis.align,
        "top_k": analysis.top_k,
        "ood_k": OOD_K,
        "knn_k": knn_k,
        "trust_k": TRUST_K,
        "num_images": len(analysis.ids),
        "data_map": _data_map(analysis.dynamics),
        "snapshots": [
            {
                "step": int(step),
                "accuracy": finite(analysis.accuracy[s]),
                "knn_accuracy": finite(analysis.knn_accuracy[s]),
                "trustworthiness": finite(analysis.trustworthiness[s]),
                "disparity": finite(analysis.disparity[s]),
                "top": [analysis.ids[i] for i in analysis.top(s)],
            }
            for s, step in enumerate(analysis.steps)
        ],
    }


def _data_map(dyn: Dynamics) -> dict:
    region = dyn.columns.get("data_map_region")
    return {
        "confidence_threshold": dyn.confidence_threshold,
        "variability_threshold": dyn.variability_threshold,
        "regions": None if region is None else {r: int((region == r).sum()) for r in REGIONS},
    }


def _savez(path: os.PathLike, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def assemble(
    run, steps, ids, labels, class_names, results, coords, disparity, align, top_k, *, dynamics: Dynamics
) -> Analysis:
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
        trustworthiness=np.array([r["trustworthiness"] for r in results], dtype=np.float64),
        predictions=predictions,
        align=align,
        top_k=top_k,
        dynamics=dynamics,
    )


def steps_text(steps: Iterable[int]) -> str:
    steps = list(steps)
    return ", ".join(str(s) for s in steps) if steps else "none"
