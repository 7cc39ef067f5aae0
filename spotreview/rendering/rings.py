"""``export --highlight-issue NAME``: which images every frame rings, from an issue group.

The groups are the review's (:func:`spotreview.reviewing.issues.issue_groups` on the review
table, built from the analysis export has loaded, with the default outlier threshold).
A group is named by its slug, its key with hyphens (``likely-mislabelled``,
``hard-to-learn``, ...: :data:`ISSUE_NAMES`), read forgivingly by :func:`issue_key`.

What the rings show is computed from parts of the run the approval covers (the analysis, the
probabilities it checked, eval.csv, the exclusions), so an approval covers the rings too; the
choice of group is an export option, like ``--highlight`` and ``--top-k``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spotreview.errors import ExportError
from spotreview.rendering.style import ISSUE_RING_COLOR
from spotreview.reviewing.issues import TITLES

logger = logging.getLogger(__name__)

#: The slug of every issue group, in the Issues widget's order.
ISSUE_NAMES = tuple(key.replace("_", "-") for key in TITLES)
#: Groups computed from the predicted probabilities: empty on a run recorded without them.
_NEEDS_PROBS = frozenset({"likely_mislabelled", "hard_to_learn", "forgotten", "learned_late"})


@dataclass(frozen=True)
class IssueRings:
    """The images of one issue group that every frame rings."""

    key: str  # the group's key, e.g. "likely_mislabelled"
    title: str  # as the Issues widget shows it
    rows: np.ndarray  # (r,) int64 rows of the analysis, worst first; excluded images left out

    def record(self, ids: list[str]) -> dict:
        """``{"key", "title", "ids"}``: what export.json keeps of it."""
        return {"key": self.key, "title": self.title, "ids": [ids[int(r)] for r in self.rows]}


def _words(text: str) -> list[str]:
    """Lower-case words of ``text``; any run of other characters separates them, and the
    American 'mislabeled' is read as 'mislabelled'."""
    return [w for w in re.split(r"[^0-9a-z]+", text.lower().replace("mislabeled", "mislabelled")) if w]


def _contains(words: list[str], run: list[str]) -> bool:
    return any(words[i : i + len(run)] == run for i in range(len(words) - len(run) + 1))


def issue_key(name: str) -> str:
    """The key of the issue group ``name`` names; ExportError listing the names otherwise.

    Case, spaces, underscores and hyphens do not matter, and 'mislabeled' reads as
    'mislabelled'. The slug (``hard-to-learn``) or the title (``hard to learn (data map)``)
    names a group, and so does any run of their words that only one group has
    (``mislabelled``, ``late``, ``movers``); ``outliers`` names two, and is refused.
    """
    wanted = _words(str(name))
    names = {key: (_words(key), _words(title)) for key, title in TITLES.items()}
    exact = [key for key, forms in names.items() if wanted in forms]
    found = exact or [key for key, forms in names.items() if wanted and any(_contains(f, wanted) for f in forms)]
    if len(found) == 1:
        return found[0]
    if found:
        which = " and ".join(key.replace("_", "-") for key in found)
        raise ExportError(f"issue group {name!r} is ambiguous: it matches {which}; name one of them")
    raise ExportError(f"unknown issue group {name!r}; use one of: {', '.join(ISSUE_NAMES)}")


def issue_rings(analysis, key: str, *, exclude: Mapping[str, str] | None = None) -> IssueRings:
    """The images of group ``key`` (from :func:`issue_key`) on ``analysis``'s run, without
    the reviewer's exclusions (``exclude``: id -> reason; excluded images are not drawn).

    An empty result is not an error (a run without mislabelled images is good news): one
    warning says why, and the export draws no rings.
    """
    from spotreview.reviewing.issues import issue_groups
    from spotreview.reviewing.table import build_table

    table = build_table(analysis.run, save=False, analysis=analysis)
    group = next((g for g in issue_groups(table) if g.key == key), None)
    skip = set(exclude or ())
    found = [] if group is None else [r for r in group.rows if analysis.ids[r] not in skip]
    if not found:
        logger.warning(
            "no image to ring for --highlight-issue %s on %s: %s; exporting without issue rings",
            key.replace("_", "-"),
            analysis.run.root,
            _why_empty(analysis, key, group),
        )
    return IssueRings(key, TITLES[key], np.asarray(found, dtype=np.int64))


def ring_artist(ax, issue: IssueRings | None, ring_area: float):
    """``(rows, artist)``: the (r,) int64 rows ringed and the matplotlib collection that
    rings them (offsets set per frame), in :data:`~spotreview.rendering.style.ISSUE_RING_COLOR`
    above the points, just outside an outlier's black ring (``ring_area`` pt^2), so an image
    that is both shows both."""
    rows = np.asarray(issue.rows if issue is not None else [], dtype=np.int64)
    artist = ax.scatter(
        np.zeros(len(rows)),
        np.zeros(len(rows)),
        s=ring_area * 1.7,
        facecolors="none",
        edgecolors=ISSUE_RING_COLOR,
        linewidths=1.5,
        zorder=2.5,
    )
    return rows, artist


def legend_handles(issue: IssueRings | None) -> list:
    """The legend entry of the rings (``title (count)``), or none without rings."""
    if issue is None or not len(issue.rows):
        return []
    from matplotlib.lines import Line2D

    ring = dict(ls="", marker="o", ms=9, mfc="none", mec=ISSUE_RING_COLOR, mew=1.5)
    return [Line2D([], [], **ring, label=f"{issue.title} ({len(issue.rows)})")]


def _why_empty(analysis, key: str, group) -> str:
    if group is not None:
        return f"all {len(group.rows)} of its images are excluded"
    if key in _NEEDS_PROBS and analysis.predictions is None:
        return "the group needs the predicted probabilities of every snapshot, which this run lacks"
    if key == "learned_late" and len(analysis.steps) < 3:
        return "the group needs 3 or more snapshots"
    return f"the group {TITLES[key]!r} is empty"
