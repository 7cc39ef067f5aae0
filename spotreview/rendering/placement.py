"""Where to put the labels of marked points so they never overlap each other or leave the axes.

Pure geometry in pixels (no matplotlib): :func:`place_labels` puts each label, in order, at the
first of a ring of candidate positions around its point (nearest first) that stays inside the
box, overlaps no label placed before it and covers no other marked point; labels pushed away
from their point get a leader line (:func:`leader`). When no candidate is free (more labels
than room), the one overlapping least is taken, still inside the box.
"""

from __future__ import annotations

import numpy as np

# Directions tried at every distance, nearest first: upper right (the usual place of a
# label), then the other diagonals, then the sides.
_ANGLES = np.deg2rad([45, 135, -45, -135, 90, -90, 0, 180, 22.5, 157.5, -22.5, -157.5, 67.5, 112.5, -67.5, -112.5])
_STEPS = 12  # distances tried: gap, 2 gap, ... (gap the free space around a point)


def _overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Areas of overlap of ``box`` (x0, y0, x1, y1) with each of ``others`` (m, 4)."""
    if not len(others):
        return np.zeros(0)
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _candidates(anchor: np.ndarray, size: np.ndarray, gap: float) -> np.ndarray:
    """(c, 2) label centres around ``anchor``, nearest first: in each direction ``u`` the
    label's nearest point to the anchor is ``anchor + r u`` for ``r`` = gap, 2 gap, ..."""
    u = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)
    u[np.abs(u) < 1e-9] = 0.0
    push = np.sign(u) * size / 2  # from that nearest point to the label's centre
    return np.concatenate([anchor + u * (k * gap) + push for k in range(1, _STEPS + 1)])


def _on_rings(box: np.ndarray, centres: np.ndarray, radius: float) -> float:
    """How deep ``box`` reaches into the circles of ``radius`` around ``centres``."""
    nearest = np.clip(centres, box[:2], box[2:])
    dist = np.hypot(*(nearest - centres).T)
    return float(np.clip(radius - dist - 1e-6, 0, None).sum())


def place_labels(
    anchors: np.ndarray,
    sizes: np.ndarray,
    bounds: tuple[float, float, float, float],
    *,
    gap: float,
    prefer: np.ndarray | None = None,
) -> np.ndarray:
    """(m, 2) label centres in pixels, for labels of ``sizes`` (m, 2: width, height) naming
    the points at ``anchors`` (m, 2), inside ``bounds`` (x0, y0, x1, y1), placed in order.

    ``gap``: the free radius around each point (its ring), which no label covers.
    ``prefer``: (m, 2) offsets from the anchors (NaN: none) tried first, so a label that
    was free in the previous frame stays where it was instead of hopping around.
    """
    anchors = np.asarray(anchors, float).reshape(-1, 2)
    sizes = np.asarray(sizes, float).reshape(-1, 2)
    x0, y0, x1, y1 = bounds
    placed = np.zeros((0, 4))
    centres = np.zeros_like(anchors)
    for i, (anchor, size) in enumerate(zip(anchors, sizes)):
        half = size / 2
        cands = _candidates(anchor, size, gap)
        if prefer is not None and np.isfinite(prefer[i]).all():
            cands = np.concatenate([[anchor + prefer[i]], cands])
        # Keep every candidate inside the box (a label near an edge slides along it).
        lo = np.array([x0, y0]) + half
        hi = np.maximum(np.array([x1, y1]) - half, lo)
        cands = np.clip(cands, lo, hi)
        boxes = np.concatenate([cands - half, cands + half], 1)
        best, best_cost = cands[0], np.inf
        for c, box in zip(cands, boxes):
            on_labels = _overlap(box, placed).sum()
            on_rings = _on_rings(box, anchors, gap)
            cost = on_labels * 1e6 + on_rings
            if cost == 0:
                best = c
                break
            if cost < best_cost:
                best, best_cost = c, cost
        centres[i] = best
        placed = np.concatenate([placed, [np.concatenate([best - half, best + half])]])
    return centres


def leader(anchor: np.ndarray, centre: np.ndarray, size: np.ndarray, gap: float) -> np.ndarray | None:
    """(2, 2) pixel segment from the point's ring to the label's edge, or None when the label
    sits right by its point (its near edge within 1.5 ``gap``) and needs no line."""
    anchor, centre, half = (np.asarray(v, float) for v in (anchor, centre, np.asarray(size) / 2))
    d = centre - anchor
    dist = float(np.hypot(*d))
    if dist == 0:
        return None
    u = d / dist
    # Distance from the label's centre back to its edge along the line to the point.
    with np.errstate(divide="ignore"):
        to_edge = float(min(half[0] / abs(u[0]) if u[0] else np.inf, half[1] / abs(u[1]) if u[1] else np.inf))
    if dist - to_edge <= 1.5 * gap:
        return None
    return np.array([anchor + u * gap, centre - u * to_edge])
