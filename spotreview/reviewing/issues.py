"""Issue groups of a review table: which images to look at first, and why.

``issue_groups(df)`` reads a review table (``table.build_table``, or a bundle's table: the
same columns) and returns the groups Spotlight's Issues widget shows, each with a title, a
severity, the columns that explain it, one sentence of description and its rows (positions
in ``df``, worst first). Pure pandas/numpy, no Spotlight: :mod:`spotreview.reviewing.review`
turns the groups into Spotlight ``DataIssue`` objects.

===============================  ========  =================================================
group (``key``)                  severity  rule, order
===============================  ========  =================================================
``likely_mislabelled``           high      ``is_label_issue_last``; ``label_quality_last`` up
``hard_to_learn``                medium    ``data_map_region == "hard"``; ``confidence_mean`` up
``forgotten``                    medium    ``forgetting_events >= 2``; ``forgetting_events`` down
``learned_late``                 low       ``learned_step >= s0 + 0.75 (sL - s0)`` (s0, sL:
                                           first and last snapshot step; 3+ snapshots);
                                           ``learned_step`` down
``persistent_outliers``          medium    ``outlier_status == "persistent"``;
                                           ``outlier_rank_last`` up
``emerging_outliers``            medium    ``outlier_status == "emerging"``;
                                           ``outlier_rank_last`` up
``largest_movers``               low       the T rows of largest ``neighbour_change`` (T: the
                                           outlier threshold), ties by ``movement``; only those
                                           above the median change; ``neighbour_change`` down
===============================  ========  =================================================

A group whose columns the table lacks (a run without probabilities) or that has no rows is
left out. Ties keep the table's row order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Severity = Literal["low", "medium", "high"]

#: Share of the training steps (from the first snapshot to the last) after which an image
#: counts as learned late: the last quarter.
LATE_FRACTION = 0.75
#: Forgetting events from which an image counts as forgotten.
FORGOTTEN_EVENTS = 2
#: Steps are read from this column's first row (row 0 of each cell: the snapshot steps).
STEPS_COLUMN = "outlier_score_trajectory"
#: Every group's ``key`` and title, in the order :func:`issue_groups` returns them.
TITLES = {
    "likely_mislabelled": "likely mislabelled",
    "hard_to_learn": "hard to learn (data map)",
    "forgotten": f"forgotten at least {FORGOTTEN_EVENTS} times",
    "learned_late": "learned only in the last quarter",
    "persistent_outliers": "persistent outliers",
    "emerging_outliers": "emerging outliers",
    "largest_movers": "largest movers",
}


@dataclass(frozen=True)
class IssueGroup:
    """One group of the Issues widget; ``rows`` are positions in the table, worst first."""

    key: str  # a stable name, e.g. "likely_mislabelled"
    title: str
    severity: Severity
    columns: tuple[str, ...]  # the table columns that explain it
    description: str  # one sentence: the rule and the order
    rows: tuple[int, ...]


def issue_groups(df, *, outlier_threshold: int | None = None) -> list[IssueGroup]:
    """The non-empty issue groups of the review table ``df`` (a ``pandas.DataFrame``), in
    the order of the table in this module's docstring.

    ``outlier_threshold``: the number of largest movers; None for
    ``df.attrs["outlier_threshold"]`` (set by ``build_table`` and kept in bundles), else 1 %
    of the rows (at least 1).
    """
    if outlier_threshold is None:
        outlier_threshold = df.attrs.get("outlier_threshold") or max(1, math.ceil(0.01 * len(df)))
    makers = (
        _likely_mislabelled,
        _hard_to_learn,
        _forgotten,
        _learned_late,
        _persistent_outliers,
        _emerging_outliers,
        lambda d: _largest_movers(d, int(outlier_threshold)),
    )
    groups = [make(df) for make in makers]
    return [g for g in groups if g is not None and g.rows]


def _has(df, *columns: str) -> bool:
    return set(columns) <= set(df.columns)


def _ordered(df, mask, by: str, *, descending: bool) -> tuple[int, ...]:
    """Positions of the rows where ``mask`` holds, sorted by ``by`` (worst first); ties and
    NaN keep row order (NaN last)."""
    import numpy as np

    pos = np.flatnonzero(np.asarray(mask, dtype=bool))
    values = df[by].to_numpy(dtype=np.float64)[pos]
    key = -values if descending else values
    return tuple(int(p) for p in pos[np.argsort(key, kind="stable")])


def _likely_mislabelled(df) -> IssueGroup | None:
    cols = ("is_label_issue_last", "label_quality_last", "label", "prediction_last")
    if not _has(df, *cols):
        return None
    # Ordered by label quality: of the signals measured on flipped training labels, it ranks
    # them best (benchmarks/RESULTS.md); confidence and margin are shown as a second opinion.
    second = tuple(c for c in ("confidence_mean", "margin_mean") if c in df.columns)
    return IssueGroup(
        "likely_mislabelled",
        TITLES["likely_mislabelled"],
        "high",
        cols + second,
        "cleanlab's find_label_issues flags the label as probably wrong at the last snapshot; "
        "lowest label quality first (confidence_mean and margin_mean over training are a second opinion).",
        _ordered(df, df["is_label_issue_last"], "label_quality_last", descending=False),
    )


def _hard_to_learn(df) -> IssueGroup | None:
    cols = ("data_map_region", "confidence_mean", "confidence_std", "correct_fraction")
    if not _has(df, *cols):
        return None
    return IssueGroup(
        "hard_to_learn",
        TITLES["hard_to_learn"],
        "medium",
        cols,
        "Low confidence in the label and low variability over training (the data map's hard-to-learn "
        "region, where mislabelled images gather); lowest confidence first.",
        _ordered(df, df["data_map_region"].astype(str) == "hard", "confidence_mean", descending=False),
    )


def _forgotten(df) -> IssueGroup | None:
    cols = ("forgetting_events", "correct_fraction", "confidence_std")
    if not _has(df, *cols):
        return None
    return IssueGroup(
        "forgotten",
        TITLES["forgotten"],
        "medium",
        cols,
        f"Went from right to wrong between consecutive snapshots at least {FORGOTTEN_EVENTS} times; "
        "most forgotten first.",
        _ordered(df, df["forgetting_events"] >= FORGOTTEN_EVENTS, "forgetting_events", descending=True),
    )


def _learned_late(df) -> IssueGroup | None:
    import numpy as np

    cols = ("learned_step", "correct_fraction", "confidence_mean")
    if not _has(df, *cols, STEPS_COLUMN) or not len(df):
        return None
    steps = np.asarray(df[STEPS_COLUMN].iloc[0], dtype=np.float64)[0]
    # with two snapshots every image learned in training would be "late": no distinction
    if len(steps) < 3 or steps[-1] <= steps[0]:
        return None
    cut = steps[0] + LATE_FRACTION * (steps[-1] - steps[0])
    learned = df["learned_step"].to_numpy(dtype=np.float64)
    return IssueGroup(
        "learned_late",
        TITLES["learned_late"],
        "low",
        cols,
        f"Stays right only from step {cut:g} or later (the last quarter of steps {steps[0]:g} to "
        f"{steps[-1]:g}); latest first.",
        _ordered(df, ~np.isnan(learned) & (learned >= cut), "learned_step", descending=True),
    )


def _outliers(df, status: str, description: str) -> IssueGroup | None:
    cols = ("outlier_status", "outlier_rank_first", "outlier_rank_last", "outlier_score_last")
    if not _has(df, *cols):
        return None
    mask = df["outlier_status"].astype(str) == status
    return IssueGroup(
        f"{status}_outliers",
        TITLES[f"{status}_outliers"],
        "medium",
        cols,
        description,
        _ordered(df, mask, "outlier_rank_last", descending=False),
    )


def _persistent_outliers(df) -> IssueGroup | None:
    return _outliers(
        df,
        "persistent",
        "Among the most atypical images (rank within the outlier threshold) at the first and the last "
        "snapshot; most atypical at the last first.",
    )


def _emerging_outliers(df) -> IssueGroup | None:
    return _outliers(
        df,
        "emerging",
        "Among the most atypical images at the last snapshot but not at the first: the fine-tuned model "
        "finds them odd; most atypical first.",
    )


def _largest_movers(df, count: int) -> IssueGroup | None:
    import numpy as np

    cols = ("neighbour_change", "movement", "outlier_rank_first", "outlier_rank_last")
    if not _has(df, *cols) or not len(df):
        return None
    change = df["neighbour_change"].to_numpy(dtype=np.float64)
    movement = df["movement"].to_numpy(dtype=np.float64)
    # neighbour_change takes few values (k + 1), so ties go to the larger 2-D distance, then row order
    top = np.lexsort((np.arange(len(df)), -movement, -change))[: max(1, count)]
    # where most images changed as much, the top is no distinction: only changes above the median
    top = top[change[top] > np.median(change)]
    return IssueGroup(
        "largest_movers",
        TITLES["largest_movers"],
        "low",
        cols,
        f"Up to {count} images whose high-D nearest neighbours changed most between the first and the last "
        "snapshot, above the median change only; most changed first.",
        tuple(int(p) for p in top),
    )
