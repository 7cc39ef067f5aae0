"""How the scatter of the animation looks, in one place for both renderers: class colours,
the fixed axis limits, marker sizes and the order in which the points are drawn.

:mod:`spotreview.rendering.figure` draws the GIF/MP4 frames with these values;
:mod:`spotreview.rendering.player` writes them into the HTML player's data JSON, which
``assets/player.js`` reads instead of keeping copies, so both show the same picture.
"""

from __future__ import annotations

import numpy as np

#: The ring around the images of an issue group (``export --highlight-issue``): a colour no
#: class palette (tab10, tab20, turbo) and no "colour by" scale below uses.
ISSUE_RING_COLOR = "#ff00ff"

#: The player's "colour by" scales other than class: category name -> colour, in category
#: order; later categories are drawn on top, so the few that matter are never buried.
CORRECT_COLORS = {"correct": "#9ecae1", "wrong": "#e41a1c"}
REGION_COLORS = {"easy": "#1b9e77", "ambiguous": "#7570b3", "hard": "#d95f02"}  # analysis.dynamics.REGIONS
FORGETTING_COLORS = {"never forgotten": "#bdbdbd", "forgotten once": "#fd8d3c", "forgotten 2+ times": "#a50f15"}
#: A comparison's outcome of an image from run A's last snapshot to B's (``reviewing.compare.CHANGES``).
CHANGE_COLORS = {"fixed": "#1a9850", "broken": "#d73027", "both_right": "#4575b4", "both_wrong": "#636363"}

# Each class is drawn in this many parts, the parts of all classes interleaved in a fixed
# shuffled order, so no class always sits on top of the others.
DRAW_PARTS = 4
_POINT_SEED = 0  # shuffles the points before they are split into parts
_PART_SEED = 1  # shuffles the parts


def class_colors(n_classes: int) -> np.ndarray:
    """(n_classes, 4) float64 RGBA in [0, 1], qualitative where the palettes allow."""
    from matplotlib import colormaps

    if n_classes <= 10:
        return colormaps["tab10"](np.arange(n_classes))
    if n_classes <= 20:
        return colormaps["tab20"](np.arange(n_classes))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))


def class_hex(n_classes: int) -> list[str]:
    """(n_classes,) ``"#rrggbb"``: :func:`class_colors` as the browser takes them."""
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in class_colors(n_classes)]


def axis_limits(coords: np.ndarray, box_px: tuple[float, float]) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` covering every snapshot (5 % margin) with equal scale on both axes.

    ``coords`` (S, n, 2) float; ``box_px`` the axes size (width, height) in pixels. One data
    unit gets the same number of pixels horizontally and vertically, so distances in the
    picture are faithful. Non-finite points are ignored; with none left, (-1, 1, -1, 1).
    """
    finite = coords[np.isfinite(coords).all(-1)]
    if finite.size == 0:
        return -1.0, 1.0, -1.0, 1.0
    lo, hi = finite.min(0).astype(float), finite.max(0).astype(float)
    span = np.maximum(hi - lo, 1e-9) * 1.1
    center = (lo + hi) / 2
    aspect = box_px[0] / box_px[1]
    if span[0] / span[1] < aspect:
        span[0] = span[1] * aspect
    else:
        span[1] = span[0] / aspect
    return (center[0] - span[0] / 2, center[0] + span[0] / 2, center[1] - span[1] / 2, center[1] + span[1] / 2)


def marker_area(n_points: int) -> float:
    """Area of a point's marker in pt^2 at the design dpi: smaller as the cloud gets denser."""
    return float(np.clip(4000.0 / max(n_points, 1), 2.0, 36.0))


def marker_alpha(n_points: int) -> float:
    """Opacity of a point: lower for large clouds, so dense regions read as denser."""
    return 0.8 if n_points > 2000 else 0.9


def ring_area(n_points: int) -> float:
    """Area in pt^2 of the ring around a leaderboard outlier: a clear margin around its point."""
    return max(marker_area(n_points) * 4, 60)


def point_shuffle(n_points: int) -> np.ndarray:
    """(n,) int64: a fixed permutation of the rows, the first step of :func:`draw_groups`."""
    return np.random.default_rng(_POINT_SEED).permutation(n_points)


def draw_groups(labels: np.ndarray, n_classes: int, shuffle: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(class, rows)`` in drawing order: each class's rows (in ``shuffle`` order) split into
    :data:`DRAW_PARTS` parts, the parts of all classes in a fixed shuffled order.

    ``labels`` (n,) int class index; ``shuffle`` (n,) int64 a permutation of the rows
    (:func:`point_shuffle`). Every row is in exactly one group.
    """
    groups = [
        (c, part)
        for c in range(n_classes)
        for part in np.array_split(shuffle[labels[shuffle] == c], DRAW_PARTS)
        if len(part)
    ]
    return [groups[g] for g in np.random.default_rng(_PART_SEED).permutation(len(groups))]


def draw_order(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) int64 rows in the order the GIF draws them (later rows on top): the groups of
    :func:`draw_groups` over :func:`point_shuffle`, one after the other."""
    labels = np.asarray(labels, dtype=np.int64)
    groups = draw_groups(labels, n_classes, point_shuffle(len(labels)))
    return np.concatenate([rows for _, rows in groups]).astype(np.int64) if groups else np.zeros(0, np.int64)
