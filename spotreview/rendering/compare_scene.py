"""What every frame of a two-run comparison shows, as plain data: the :class:`ComparisonScene`.

Two panels, one per run, each its run's :class:`~spotreview.rendering.scene.Scene` (coordinates,
loss curve, epochs, its own fixed axes), with B's rows put in A's row order. The panels are
synchronised on one timeline of *sync values*: the training progress of a snapshot (its step
as a fraction of its run's last snapshot step), its step, or its epoch (``--sync``). The key
frames are the sync values of every snapshot of either run; at each frame a panel sits at the
point of its own run's snapshots that has that value (interpolated between two snapshots, or
held at the first or last). A leaderboard lists the images whose outcome differs most between
the two runs (:func:`differs_most`); they are ringed and numbered in both panels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from spotreview.defaults import SYNC_MODES, TOP_K
from spotreview.errors import ExportError
from spotreview.rendering.compare_figure import board_thumb_px
from spotreview.rendering.scene import Scene, build_scene
from spotreview.rendering.style import CHANGE_COLORS
from spotreview.rendering.thumbnails import placeholder_tile, thumbnail
from spotreview.rundir.run import Run


@dataclass
class ComparisonScene:
    """Everything the two-panel renderers need, as plain arrays and strings.

    ``K`` key frames, ``S_a``/``S_b`` snapshots, ``n`` images, ``k`` leaderboard slots.
    """

    panels: tuple[Scene, Scene]  # A's and B's scene, B's rows in A's order
    names: tuple[str, str]  # the runs' folder names
    accuracy: tuple[np.ndarray, np.ndarray]  # (S_a,), (S_b,) float64 eval accuracy, NaN where unknown
    sync: str  # "progress" | "step" | "epoch"
    values: tuple[np.ndarray, np.ndarray]  # (S_a,), (S_b,) float64 sync value of every snapshot
    keys: np.ndarray  # (K,) float64 ascending: the sync values of the key frames
    board: np.ndarray  # (<=k,) int64 rows whose outcome differs most, most first
    kinds: list[str]  # (<=k,) their change: fixed, broken, both_right, both_wrong or "" (no predictions)
    heads: list[str]  # (<=k,) caption above each thumbnail
    feet: list[str]  # (<=k,) caption below
    thumbs: dict[int, np.ndarray]  # row -> (T, T, 3) uint8, every board row
    counts: dict[str, int]  # images per change (empty without predictions)
    top_k: int
    tween: int
    size: tuple[int, int]  # (W, H) pixels
    dpi: float
    ids: list[str] = field(default_factory=list)  # (n,)

    @property
    def n_frames(self) -> int:
        return len(self.keys) + self.tween * (len(self.keys) - 1)

    def value_at(self, frame: int) -> float:
        """The sync value of a frame (tween frames interpolate between two key frames)."""
        i, r = divmod(frame, self.tween + 1)
        if r == 0:
            return float(self.keys[i])
        t = r / (self.tween + 1)
        return float((1 - t) * self.keys[i] + t * self.keys[i + 1])

    def position(self, panel: int, frame: int) -> float:
        """Where panel ``panel`` (0: A, 1: B) is at ``frame``, in snapshots: 2.25 is a quarter of
        the way from its third snapshot to its fourth; held at its first and last snapshot."""
        values = self.values[panel]
        if len(values) == 1:
            return 0.0
        return float(np.interp(self.value_at(frame), values, np.arange(len(values))))


def sync_values(scene: Scene, sync: str, name: str) -> np.ndarray:
    """(S,) float64 sync value of every snapshot of ``scene``; ExportError when ``epoch`` is
    asked for and a snapshot's epoch is unknown, or the values are not ascending."""
    steps = np.asarray(scene.steps, dtype=np.float64)
    if sync == "progress":
        values = steps / steps[-1] if steps[-1] > 0 else np.zeros(len(steps))
    elif sync == "step":
        values = steps
    else:
        values = np.asarray(scene.epochs if scene.epochs is not None else np.full(len(steps), np.nan), float)
        if not np.isfinite(values).all():
            raise ExportError(
                f"--sync epoch needs the epoch of every snapshot, which {name}'s log.csv and snapshots.csv "
                f"do not give; use --sync progress or --sync step"
            )
    if np.any(np.diff(values) < 0):
        raise ExportError(f"the {sync} of {name}'s snapshots does not grow with their steps; use --sync step")
    return values


def key_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,) the sync values of both runs' snapshots, ascending, values within 1e-9 of the span merged."""
    merged = np.unique(np.concatenate([a, b]).astype(np.float64))
    span = max(float(merged[-1] - merged[0]), 1e-12)
    keep = np.concatenate([[True], np.diff(merged) > 1e-9 * span])
    return merged[keep]


def permuted(analysis, rows: Iterable[int]):
    """``analysis`` (an ``Analysis``) with its images in the order ``rows`` (an index array):
    ids, labels, scores, ranks, coordinates, predictions and dynamics columns."""
    rows = np.asarray(list(rows), dtype=np.int64)
    if np.array_equal(rows, np.arange(len(analysis.ids))):
        return analysis
    dynamics = analysis.dynamics
    dynamics = replace(dynamics, columns={k: np.asarray(v)[rows] for k, v in dynamics.columns.items()})
    return replace(
        analysis,
        ids=[analysis.ids[r] for r in rows],
        labels=np.asarray(analysis.labels)[rows],
        scores=np.asarray(analysis.scores)[:, rows],
        ranks=np.asarray(analysis.ranks)[:, rows],
        coords=np.asarray(analysis.coords)[:, rows],
        predictions=None if analysis.predictions is None else np.asarray(analysis.predictions)[:, rows],
        dynamics=dynamics,
    )


def outcomes(a, b) -> np.ndarray | None:
    """(n,) object array of each image's change from A's last snapshot to B's (fixed, broken,
    both_right, both_wrong), or None unless both runs have predictions."""
    if a.predictions is None or b.predictions is None:
        return None
    right_a, right_b = a.predictions[-1] == a.labels, b.predictions[-1] == b.labels
    codes = np.select([~right_a & right_b, right_a & ~right_b, right_a & right_b], [0, 1, 2], default=3)
    return np.asarray(list(CHANGE_COLORS), dtype=object)[codes]


def differs_most(a, b, *, top_k: int = TOP_K, exclude: Iterable[str] = ()) -> np.ndarray:
    """(<=k,) int64 rows whose outcome differs most between runs ``a`` and ``b`` (analyses in
    the same row order), reviewer exclusions skipped.

    With predictions in both runs: the images fixed or broken by B (right in one run at its
    last snapshot, wrong in the other) come first, then the rest; within each, the largest
    difference of the mean confidence in the label over training (``confidence_mean``) first.
    Without: the largest change of outlier rank at the last snapshot, as a share of the images.
    """
    n = len(a.ids)
    change = outcomes(a, b)
    conf = [x.dynamics.columns.get("confidence_mean") for x in (a, b)]
    if change is not None:
        gap = np.abs(conf[1] - conf[0]) if conf[0] is not None and conf[1] is not None else np.zeros(n)
        flipped = np.isin(change, ("fixed", "broken"))
        order = np.lexsort((np.arange(n), -np.nan_to_num(gap, nan=0.0), ~flipped))
    else:
        gap = np.abs(b.ranks[-1].astype(np.float64) - a.ranks[-1]) / max(n, 1)
        order = np.lexsort((np.arange(n), -gap))
    skip = set(exclude)
    return np.asarray([r for r in order if a.ids[r] not in skip][:top_k], dtype=np.int64)


def _captions(a, b, rows: np.ndarray, change) -> tuple[list[str], list[str], list[str]]:
    """(kinds, heads, feet) of the leaderboard's thumbnails."""
    names = [str(c) for c in a.class_names]

    def name(k: int) -> str:
        return f"label {names[k]}" if names[k].isdigit() else names[k]

    kinds, heads, feet = [], [], []
    for slot, row in enumerate(rows):
        kind = "" if change is None else str(change[row])
        kinds.append(kind)
        heads.append(f"#{slot + 1} {kind.replace('_', ' ')}".strip())
        if change is None:
            feet.append(f"{name(a.labels[row])}\nrank A {a.ranks[-1, row]:,} · B {b.ranks[-1, row]:,}")
            continue
        marks = [
            f"{side} {names[p[-1, row]]} {'✓' if p[-1, row] == a.labels[row] else '✗'}"
            for side, p in (("A", a.predictions), ("B", b.predictions))
        ]
        feet.append(f"{name(a.labels[row])}\n{' · '.join(marks)}")
    return kinds, heads, feet


def build_comparison_scene(
    analysis_a,
    analysis_b,
    *,
    sync: str = "progress",
    exclude: Iterable[str] = (),
    top_k: int = TOP_K,
    tween: int = 0,
    size: tuple[int, int] = (1280, 720),
    dpi: float | None = None,
    thumb_px: int | None = None,
) -> ComparisonScene:
    """Collect what the frames show from two analyses of the same images (B's rows already in
    A's order, see :func:`permuted`) and their runs' log.csv and images.

    ``exclude``: ids left off the leaderboard (both runs' reviewer exclusions). ExportError for
    an unknown ``sync`` or one the runs cannot give (:func:`sync_values`).
    """
    if sync not in SYNC_MODES:
        raise ExportError(f"unknown --sync {sync!r}; use one of {', '.join(SYNC_MODES)}")
    if list(analysis_a.ids) != list(analysis_b.ids):
        raise ExportError("the two analyses hold other images or another row order; compare them with check_comparable")
    exclude = set(exclude)
    panels = tuple(build_scene(x, exclude=exclude, top_k=top_k, size=size, dpi=dpi) for x in (analysis_a, analysis_b))
    names = tuple(Run(x.run).root.name for x in (analysis_a, analysis_b))
    values = tuple(sync_values(p, sync, name) for p, name in zip(panels, names))
    board = differs_most(analysis_a, analysis_b, top_k=top_k, exclude=exclude)
    change = outcomes(analysis_a, analysis_b)
    kinds, heads, feet = _captions(analysis_a, analysis_b, board, change)
    px = thumb_px or board_thumb_px(size, top_k)
    run = Run(analysis_a.run)
    thumbs = {}
    for row in board.tolist():
        tile = thumbnail(run.image_path(analysis_a.ids[row]), px)
        thumbs[row] = placeholder_tile(px) if tile is None else tile
    n_steps = [len(x.steps) for x in (analysis_a, analysis_b)]
    return ComparisonScene(
        panels=panels,
        names=names,
        accuracy=tuple(
            np.asarray(getattr(x, "accuracy", np.full(s, np.nan)), float)
            for x, s in zip((analysis_a, analysis_b), n_steps)
        ),
        sync=sync,
        values=values,
        keys=key_values(*values),
        board=board,
        kinds=kinds,
        heads=heads,
        feet=feet,
        thumbs=thumbs,
        counts={} if change is None else {k: int((change == k).sum()) for k in CHANGE_COLORS},
        top_k=top_k,
        tween=int(tween),
        size=tuple(size),
        dpi=panels[0].dpi,
        ids=list(analysis_a.ids),
    )
