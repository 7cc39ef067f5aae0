"""Training dynamics of every image: how the model's belief in its label moved over the snapshots.

Pure numpy. Inputs, S snapshots in step order and n images:

* the class probabilities ``probs`` (S, n, C) float (what ``step-STEP.probs.npy`` holds), or
  the per-snapshot terms :func:`label_terms` takes from them, so that ``analyze`` keeps two
  (n,) vectors per snapshot instead of re-reading every probability file;
* ``labels`` (n,) int64 class index, ``steps`` (S,) int64 ascending;
* the k nearest neighbours (high-D, those of cleanlab's outlier score) of every image at the
  first and at the last snapshot, (n, k) int, distinct indices per row.

Output, one (n,) array per column:

* ``confidence_mean`` float64: mean over snapshots of p(label) (Swayamdipta et al. 2020,
  "confidence"); lower = the model believes the label less;
* ``confidence_std`` float64: its population standard deviation (ddof=0, as the paper),
  "variability"; higher = the belief changed more;
* ``correct_fraction`` float64: share of snapshots whose prediction (argmax, first index
  on ties) equals the label;
* ``forgetting_events`` int64: consecutive snapshot pairs going from correct to wrong
  (Toneva et al. 2019);
* ``learned_step`` float64: the first step from which the image stays correct up to the
  last snapshot; NaN when it is wrong at the last snapshot (float NaN, not a nullable
  integer, so parquet, pandas and Spotlight all read it as a plain number column);
* ``margin_mean`` float64: mean over snapshots of p(label) minus the largest other
  probability (AUM, Pleiss et al. 2020, on probabilities); negative = usually beaten;
* ``data_map_region`` str: ``ambiguous`` when ``confidence_std >= variability_threshold``,
  else ``easy`` when ``confidence_mean >= confidence_threshold``, else ``hard`` (to learn);
* ``neighbour_change`` float64: 1 - |N_first ∩ N_last| / |N_first ∪ N_last| (Jaccard), 0 =
  the same neighbours at the end as at the start, 1 = none in common.

Validation (:func:`check_probs`, :func:`check_neighbours`, :func:`check_thresholds`) is apart
from the computation; it raises ``AnalysisError`` with one-line messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from spotreview.defaults import CONFIDENCE_THRESHOLD, VARIABILITY_THRESHOLD
from spotreview.errors import AnalysisError

#: ``data_map_region`` values, in category-code order.
REGIONS = ("easy", "ambiguous", "hard")
#: Columns computed from the probabilities (only when every snapshot has them).
PROBABILITY_COLUMNS = (
    "confidence_mean",
    "confidence_std",
    "correct_fraction",
    "forgetting_events",
    "learned_step",
    "margin_mean",
    "data_map_region",
)
#: Columns computed from the neighbours (every run).
NEIGHBOUR_COLUMNS = ("neighbour_change",)
COLUMNS = PROBABILITY_COLUMNS + NEIGHBOUR_COLUMNS
_ROWS = 8192  # rows per block in label_terms: one block's copy of probs stays small for any C


@dataclass(frozen=True)
class Dynamics:
    """The dynamics columns of a run (name -> (n,) array, in :data:`COLUMNS` order; without
    probabilities only ``neighbour_change``) and the thresholds of ``data_map_region``."""

    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    confidence_threshold: float = CONFIDENCE_THRESHOLD
    variability_threshold: float = VARIABILITY_THRESHOLD


# --- validation ---------------------------------------------------------------------------


def check_thresholds(confidence_threshold: float, variability_threshold: float) -> None:
    """AnalysisError unless both data-map thresholds are numbers in [0, 1]."""
    for name, value in (
        ("confidence_threshold", confidence_threshold),
        ("variability_threshold", variability_threshold),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise AnalysisError(f"{name} must be a number in [0, 1], got {value!r}")
        if not 0 <= value <= 1:
            raise AnalysisError(f"{name} must be in [0, 1], got {value}")


def check_probs(probs: np.ndarray, labels: np.ndarray, where: str = "probabilities") -> None:
    """AnalysisError unless ``probs`` (..., n, C) is finite and every label indexes a column."""
    if probs.shape[-2] != len(labels):
        raise AnalysisError(f"{where} have {probs.shape[-2]} rows for {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[-1]):
        raise AnalysisError(
            f"{where} have {probs.shape[-1]} classes but the labels go from {labels.min()} to {labels.max()}"
        )
    if not np.isfinite(probs).all():
        raise AnalysisError(f"{where} have NaN/inf values")


def check_neighbours(first: np.ndarray, last: np.ndarray) -> None:
    """AnalysisError unless both are (n, k) integer arrays of the same shape, k >= 1, with
    distinct indices in every row."""
    if first.shape != last.shape or first.ndim != 2 or first.shape[1] < 1:
        raise AnalysisError(f"neighbour lists must be two (n, k) arrays alike; got {first.shape} and {last.shape}")
    for which, a in (("first", first), ("last", last)):
        if a.dtype.kind not in "iu":
            raise AnalysisError(f"neighbour indices ({which}) must be integers, got {a.dtype}")
        if (np.diff(np.sort(a, axis=1), axis=1) == 0).any():
            raise AnalysisError(f"neighbour lists ({which}) repeat an index within a row")


# --- computation --------------------------------------------------------------------------


def label_terms(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One snapshot's p(label) and margin: ``probs`` (n, C) float, ``labels`` (n,) int (checked
    by :func:`check_probs`). Returns two (n,) float64: p(label), and p(label) minus the largest
    other probability (exact: a float32 difference is exact in float64)."""
    n = len(labels)
    label_prob = np.empty(n, dtype=np.float64)
    margin = np.empty(n, dtype=np.float64)
    for start in range(0, n, _ROWS):
        rows = slice(start, start + _ROWS)
        block = np.array(probs[rows], dtype=np.float64)  # a copy: the label's entry is masked below
        r = np.arange(len(block))
        label_prob[rows] = block[r, labels[rows]]
        block[r, labels[rows]] = -math.inf
        margin[rows] = label_prob[rows] - block.max(axis=1) if block.shape[1] > 1 else label_prob[rows]
    return label_prob, margin


def probability_dynamics(
    label_prob: np.ndarray,
    margin: np.ndarray,
    correct: np.ndarray,
    steps: np.ndarray,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    variability_threshold: float = VARIABILITY_THRESHOLD,
) -> dict[str, np.ndarray]:
    """The :data:`PROBABILITY_COLUMNS` from per-snapshot terms: ``label_prob``, ``margin`` (S, n)
    float64, ``correct`` (S, n) bool (prediction == label), ``steps`` (S,) int ascending."""
    label_prob = np.asarray(label_prob, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    steps = np.asarray(steps, dtype=np.int64)
    n_snap = len(steps)
    mean, std = label_prob.mean(axis=0), label_prob.std(axis=0)
    forgetting = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.int64)
    # The snapshot after the last wrong one; 0 when never wrong, S when wrong at the end.
    wrong = ~correct
    last_wrong = n_snap - 1 - np.argmax(wrong[::-1], axis=0)
    learned_at = np.where(wrong.any(axis=0), last_wrong + 1, 0)
    learned = np.full(correct.shape[1], np.nan)
    ok = learned_at < n_snap
    learned[ok] = steps[learned_at[ok]]
    return {
        "confidence_mean": mean,
        "confidence_std": std,
        "correct_fraction": correct.mean(axis=0),
        "forgetting_events": forgetting,
        "learned_step": learned,
        "margin_mean": np.asarray(margin, dtype=np.float64).mean(axis=0),
        "data_map_region": data_map_region(
            mean, std, confidence_threshold=confidence_threshold, variability_threshold=variability_threshold
        ),
    }


def data_map_region(
    confidence_mean: np.ndarray,
    confidence_std: np.ndarray,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    variability_threshold: float = VARIABILITY_THRESHOLD,
) -> np.ndarray:
    """(n,) object array of :data:`REGIONS`: ``ambiguous`` where ``confidence_std >=
    variability_threshold``, else ``easy`` where ``confidence_mean >= confidence_threshold``,
    else ``hard``."""
    codes = np.select(
        [np.asarray(confidence_std) >= variability_threshold, np.asarray(confidence_mean) >= confidence_threshold],
        [1, 0],
        default=2,
    )
    return np.asarray(REGIONS, dtype=object)[codes]


def neighbour_change(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """(n,) float64 1 - Jaccard overlap of each row's neighbour sets; ``first``, ``last`` (n, k)
    int with distinct indices per row (checked by :func:`check_neighbours`)."""
    k = first.shape[1]
    common = np.zeros(len(first), dtype=np.int64)
    for j in range(k):  # k passes over (n, k): no (n, k, k) temporary
        common += (last == first[:, j : j + 1]).any(axis=1)
    return 1.0 - common / (2 * k - common)


def training_dynamics(
    probs: np.ndarray,
    labels: np.ndarray,
    steps: np.ndarray,
    neighbours_first: np.ndarray,
    neighbours_last: np.ndarray,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    variability_threshold: float = VARIABILITY_THRESHOLD,
) -> dict[str, np.ndarray]:
    """Every column of :data:`COLUMNS` from the probabilities of all snapshots at once.

    ``probs`` (S, n, C) float, ``labels`` (n,) int, ``steps`` (S,) int ascending, neighbours
    (n, k) int. The same numbers ``analyze`` stores, which gets them snapshot by snapshot.
    """
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    if probs.ndim != 3 or len(probs) != len(steps) or len(steps) == 0:
        raise AnalysisError(f"probabilities must be (S, n, C) for {len(steps)} steps, got shape {probs.shape}")
    if (np.diff(steps) <= 0).any():
        raise AnalysisError(f"steps must ascend, got {steps.tolist()}")
    check_probs(probs, labels)
    check_neighbours(neighbours_first, neighbours_last)
    check_thresholds(confidence_threshold, variability_threshold)
    terms = [label_terms(p, labels) for p in probs]
    correct = probs.argmax(axis=2) == labels
    out = probability_dynamics(
        np.stack([t[0] for t in terms]),
        np.stack([t[1] for t in terms]),
        correct,
        steps,
        confidence_threshold=confidence_threshold,
        variability_threshold=variability_threshold,
    )
    out["neighbour_change"] = neighbour_change(neighbours_first, neighbours_last)
    return out
