"""What the HTML player's "colour by" menu and its hover need besides the class.

* :func:`colour_modes`: the menu's modes (class; correct or wrong at the snapshot shown;
  data-map region; forgetting events), each with its categories and their colours from
  :mod:`spotreview.rendering.style`, and why a mode is unavailable on this run (no
  predicted probabilities), so ``assets/player.js`` keeps no copy of them;
* :func:`dynamics_fields`: every point's training dynamics (:mod:`spotreview.analysis.dynamics`)
  as one short list of numbers, for the hover and the region and forgetting modes;
* :func:`colouring_data`: both, and the issue group ringed (``export --highlight-issue``), as
  the fields of the page's data JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spotreview.analysis.dynamics import COLUMNS, REGIONS
from spotreview.rendering import style

#: Why the modes computed from the probabilities are unavailable on a run without them.
NO_PROBABILITIES = "needs the predicted probabilities of every snapshot, which this run lacks"
_DECIMALS = 3  # dynamics values in the page: probabilities and fractions to 0.001


def colouring_data(*, predictions: bool, dynamics: Mapping[str, np.ndarray], issue) -> tuple[dict, list | None]:
    """``(fields, dyn)``: the page's ``colour_by`` (:func:`colour_modes`), ``dynamics`` (the
    names of :func:`dynamics_fields`) and ``issue`` (the ringed group's ``title``, ring
    ``color`` and ``rows``, or None), and each point's dynamics values (None without any).

    ``issue``: a :class:`~spotreview.rendering.rings.IssueRings` or None.
    """
    names, rows = dynamics_fields(dynamics)
    ring = None
    if issue is not None:
        ring = {"title": issue.title, "color": style.ISSUE_RING_COLOR, "rows": [int(r) for r in issue.rows]}
    fields = {"colour_by": colour_modes(predictions=predictions, dynamics=dynamics), "dynamics": names, "issue": ring}
    return fields, (rows if names else None)


def colour_modes(*, predictions: bool, dynamics: Mapping[str, np.ndarray]) -> list[dict]:
    """The "colour by" modes, the class first (the default).

    Each is ``{"key", "label", "names", "colors", "missing"}``: ``names`` and ``colors`` the
    categories in drawing order (later ones on top), None for the class mode (the class
    colours); ``missing`` "" or why the mode is unavailable. ``predictions``: whether every
    snapshot has predictions; ``dynamics``: the run's dynamics columns (name -> (n,) array).
    """

    def mode(key: str, label: str, colors: dict[str, str] | None, available: bool) -> dict:
        return {
            "key": key,
            "label": label,
            "names": None if colors is None else list(colors),
            "colors": None if colors is None else list(colors.values()),
            "missing": "" if available else NO_PROBABILITIES,
        }

    return [
        mode("class", "class", None, True),
        mode("correct", "correct / wrong at this snapshot", style.CORRECT_COLORS, predictions),
        mode("region", "data-map region", style.REGION_COLORS, "data_map_region" in dynamics),
        mode("forgetting", "forgetting events", style.FORGETTING_COLORS, "forgetting_events" in dynamics),
    ]


def dynamics_fields(dynamics: Mapping[str, np.ndarray]) -> tuple[list[str], list[list]]:
    """``(names, rows)``: the dynamics columns present, in :data:`COLUMNS` order, and one list
    of their values per point (n lists): floats to 0.001, ``forgetting_events`` and
    ``learned_step`` as integers, ``data_map_region`` as its index in :data:`REGIONS`,
    NaN as None."""
    names = [c for c in COLUMNS if c in dynamics]
    regions = {r: k for k, r in enumerate(REGIONS)}
    columns = []
    for name in names:
        if name == "data_map_region":
            columns.append([regions[str(v)] for v in dynamics[name]])
            continue
        values = np.asarray(dynamics[name], dtype=np.float64)
        integral = name in ("forgetting_events", "learned_step")
        values = values if integral else np.round(values, _DECIMALS)
        columns.append([None if not np.isfinite(v) else (int(v) if integral else float(v)) for v in values])
    return names, [list(row) for row in zip(*columns)]
