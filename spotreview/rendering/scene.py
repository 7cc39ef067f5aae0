"""What every frame of the animation shows, as plain data: the :class:`Scene`.

One frame per snapshot (plus ``tween`` interpolated frames between consecutive snapshots).
:func:`build_scene` collects it from an ``Analysis`` and the run's files: the aligned
coordinates, titles with step, epoch (from ``log.csv``), accuracy and the 2-D picture's
trustworthiness, subtitles with the kNN accuracy, the leaderboard of the top-k outliers per
snapshot (reviewer exclusions skipped) with their thumbnails, and the training-loss curve.
No matplotlib here; :mod:`spotreview.rendering.figure` draws a scene.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from spotreview.defaults import TOP_K, TRUST_LOW
from spotreview.errors import ExportError, RunDirError
from spotreview.rendering import style
from spotreview.rendering.figure import DEFAULT_SIZE, DESIGN_DPI, frame_layout
from spotreview.rendering.thumbnails import placeholder_tile, thumbnail
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import read_snapshot_epochs
from spotreview.util.text import plural

logger = logging.getLogger(__name__)


@dataclass
class Scene:
    """Everything the renderer needs, as plain arrays and strings (no Run or Analysis).

    ``S`` snapshots, ``n`` points, ``k`` leaderboard slots, ``T`` thumbnail size.
    """

    steps: np.ndarray  # (S,) int64 training step of each snapshot
    coords: np.ndarray  # (S, n, 2) float32 aligned 2-D coordinates
    labels: np.ndarray  # (n,) int64 class index
    class_names: list[str]
    titles: list[str]  # (S,) "step 100 · epoch 2.00 · ..."
    subtitles: list[str]  # (S,)
    board: list[np.ndarray]  # (S,) each (<=k,) int64 row indices, most atypical first
    board_scores: list[np.ndarray]  # (S,) each (<=k,) float64
    ids: list[str]  # (n,)
    thumbs: dict[int, np.ndarray]  # row -> (T, T, 3) uint8, for every row on any board
    loss: tuple[np.ndarray, np.ndarray] | None  # (m,) steps, (m,) loss; None: no curve
    loss_note: str  # shown in the loss panel when ``loss`` is None
    top_k: int
    tween: int
    size: tuple[int, int]  # (W, H) pixels
    dpi: float
    order: np.ndarray  # (n,) int64 a fixed shuffle of the rows (style.point_shuffle), for a fair drawing order
    highlight: np.ndarray | None = None  # (h,) int64 rows ringed and labelled with their id in every frame
    epochs: np.ndarray | None = None  # (S,) float64 epoch of each snapshot, NaN where unknown
    issue: object = None  # rendering.rings.IssueRings: an issue group's rows, ringed in every frame; or None

    @property
    def n_frames(self) -> int:
        return len(self.steps) + self.tween * (len(self.steps) - 1)

    def source(self, frame: int) -> tuple[int, float, int]:
        return _source(frame, self.tween)

    def coords_at(self, frame: int) -> np.ndarray:
        """(n, 2) float32 coordinates of a frame, linearly interpolated between snapshots."""
        i, t, _ = self.source(frame)
        if t == 0:
            return self.coords[i]
        return (1 - t) * self.coords[i] + t * self.coords[i + 1]


def _source(frame: int, tween: int) -> tuple[int, float, int]:
    """``(i, t, nearest)``: the frame lies ``t`` of the way from snapshot ``i`` to ``i + 1``;
    everything except the coordinates (title, leaderboard, loss) follows ``nearest``."""
    i, r = divmod(frame, tween + 1)
    t = r / (tween + 1)
    return i, t, i + 1 if t > 0.5 else i


def frame_sources(n_snapshots: int, tween: int) -> list[tuple[int, float, int]]:
    """``(i, t, nearest)`` of every frame: ``n_snapshots + tween * (n_snapshots - 1)`` frames."""
    return [_source(f, tween) for f in range(n_snapshots + tween * (n_snapshots - 1))]


def leaderboard(analysis, *, top_k: int = TOP_K, exclude: Iterable[str] = ()) -> list[np.ndarray]:
    """Row indices shown on the leaderboard of every snapshot, most atypical first.

    Returns ``S`` int64 arrays of at most ``top_k`` rows; rows whose id is in ``exclude``
    (the reviewer's exclusions) never appear.
    """
    exclude = set(exclude)
    return [np.asarray(analysis.top(i, top_k, exclude=exclude), dtype=np.int64) for i in range(len(analysis.steps))]


_LOG_COLUMNS = ("step", "epoch", "loss")
_MISSING = frozenset({"", "nan", "NaN", "NA", "N/A", "None", "null"})


def _read_log(run: Run):
    """``(log or None, reason)``; the log is ``{column: (rows,) float64}`` for step, epoch and
    loss (those present, NaN where a cell is empty); the reason says why there is no loss curve.

    ``log.csv`` first; a run without one (trained outside ``finetune``) falls back to the
    ``log_history`` of its last ``checkpoint-*/trainer_state.json``.
    """
    from spotreview.rundir.run import read_csv_columns

    if not run.log_csv.is_file():
        return _read_trainer_state(run)
    try:
        cells = read_csv_columns(run.log_csv)
    except ValueError as e:
        return None, f"{run.log_csv} cannot be read ({e})"
    if "step" not in cells:
        return None, f"{run.log_csv} has no step column"
    log = {}
    for col in (c for c in _LOG_COLUMNS if c in cells):
        try:
            log[col] = np.array([math.nan if v.strip() in _MISSING else float(v) for v in cells[col]])
        except ValueError:
            raise RunDirError(
                f"{run.log_csv} has non-numeric {col} values; {run.remake_hint()}, or delete it (no loss curve)"
            ) from None
    return log, ""


def _read_trainer_state(run: Run):
    """``(log or None, reason)`` from the newest checkpoint's ``trainer_state.json``."""
    from spotreview.rundir.traininglog import trainer_state_log

    rows, _, why = trainer_state_log(run)
    if not rows:
        return None, why
    return {
        col: np.array([math.nan if r.get(col) is None else float(r[col]) for r in rows]) for col in _LOG_COLUMNS
    }, ""


def highlight_rows(ids: list[str], highlight: Iterable[str]) -> np.ndarray:
    """(h,) int64 rows of the ``highlight`` ids, in the order given (repeats dropped);
    ExportError naming every id that is not in the evaluation set."""
    where = {image_id: row for row, image_id in enumerate(ids)}
    wanted = list(dict.fromkeys(str(h) for h in highlight))
    unknown = [h for h in wanted if h not in where]
    if unknown:
        raise ExportError(
            f"cannot highlight {', '.join(unknown)}: not in the evaluation set "
            f"(ids like {ids[0]!r}; see eval.csv or the review table)"
        )
    return np.asarray([where[h] for h in wanted], dtype=np.int64)


def _log_rows(log, col: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of the log rows where both are known, by step; None if there are none."""
    if log is None or col not in log:
        return None
    keep = np.isfinite(log["step"]) & np.isfinite(log[col])
    order = np.argsort(log["step"][keep], kind="stable")
    steps, values = log["step"][keep][order], log[col][keep][order]
    return (steps, values) if len(steps) else None


def _epochs(log, steps: np.ndarray) -> np.ndarray:
    """(S,) float64 epoch at each step, interpolated on step from log.csv; NaN if unknown."""
    out = np.full(len(steps), np.nan)
    rows = _log_rows(log, "epoch")
    if rows is None:
        return out
    xs = np.concatenate([[0.0], rows[0]])  # step 0 is epoch 0
    ys = np.concatenate([[0.0], rows[1]])
    known = steps <= xs[-1]
    out[known] = np.interp(steps[known], xs, ys)
    return out


def _loss_curve(log) -> tuple[np.ndarray, np.ndarray] | None:
    rows = _log_rows(log, "loss")
    return None if rows is None else (rows[0].astype(np.int64), rows[1])


def _board_thumbs(run: Run, ids: list[str], board: list[np.ndarray], thumb_px: int) -> dict[int, np.ndarray]:
    """row -> (T, T, 3) uint8 thumbnail of every row on any board; one warning for the
    images that are missing or unreadable (they become blank tiles)."""
    thumbs, missing = {}, 0
    for row in sorted({int(r) for rows in board for r in rows}):
        tile = thumbnail(run.image_path(ids[row]), thumb_px)
        if tile is None:
            missing += 1
            tile = placeholder_tile(thumb_px)
        thumbs[row] = tile
    if missing:
        logger.warning(
            "%d leaderboard image(s) missing or unreadable under %s; shown as blank tiles",
            missing,
            run.images_dir,
        )
    return thumbs


def _training(run: Run, steps: np.ndarray):
    """``(loss, loss_note, epochs)``: the loss curve (or None and why not, with one warning)
    and the (S,) float64 epoch of every snapshot (log.csv, then snapshots.csv; NaN if unknown)."""
    log, why = _read_log(run)
    loss = _loss_curve(log)
    if loss is None:
        why = why or f"{run.log_csv} has no loss values"
        logger.warning("%s; rendering without the loss curve", why)
    epochs = _epochs(log, steps)
    recorded = read_snapshot_epochs(run)  # snapshots.csv: the epoch each snapshot was taken at
    epochs = np.array([recorded.get(int(s), np.nan) if np.isnan(e) else e for s, e in zip(steps, epochs)])
    note = "" if loss is not None else f"not shown: {why.replace(str(run.root) + os.sep, '')}"
    return loss, note, epochs


def _titles(run: Run, steps: np.ndarray, epochs: np.ndarray, metrics: np.ndarray, n: int):
    """(titles, subtitles), one each per snapshot. ``metrics``: (S, 3) float64 accuracy, kNN
    accuracy and the 2-D picture's trustworthiness, NaN where unknown. Titles: step, epoch,
    accuracy and trustworthiness where known (``(low)`` below ``TRUST_LOW``: there the picture
    misplaces which images are neighbours); subtitles: run name, snapshot number, the number of
    images and the kNN accuracy."""
    titles, subtitles = [], []
    for i, step in enumerate(steps):
        accuracy, knn, trust = metrics[i]
        parts = [f"step {step:,}"]
        if np.isfinite(epochs[i]):
            parts.append(f"epoch {epochs[i]:.2f}")
        if np.isfinite(accuracy):
            parts.append(f"eval accuracy {accuracy:.0%}")
        if np.isfinite(trust):
            parts.append(f"trustworthiness {trust:.2f}" + (" (low)" if trust < TRUST_LOW else ""))
        titles.append("   ·   ".join(parts))
        knn_part = f"   ·   kNN accuracy {knn:.0%}" if np.isfinite(knn) else ""
        subtitles.append(f"{run.root.name}: snapshot {i + 1} of {len(steps)}, {plural(n, 'image')}{knn_part}")
    return titles, subtitles


def build_scene(
    analysis,
    *,
    exclude: Iterable[str] = (),
    top_k: int = TOP_K,
    tween: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    dpi: float | None = None,
    highlight: Iterable[str] = (),
    issue=None,
) -> Scene:
    """Collect what the frames show from an ``Analysis`` (and its run's log.csv and images).

    ``highlight``: ids ringed and labelled in every frame (ExportError names unknown ones).
    ``issue``: the :class:`~spotreview.rendering.rings.IssueRings` ringed in every frame, or None.

    Logs one warning when log.csv gives no loss curve and one when leaderboard images
    are missing (they become blank tiles).
    """
    run = Run(analysis.run)
    steps = np.asarray(analysis.steps, dtype=np.int64)
    labels = np.asarray(analysis.labels, dtype=np.int64)
    scores = np.asarray(analysis.scores, dtype=np.float64)
    chosen = highlight_rows(list(analysis.ids), highlight)

    board = leaderboard(analysis, top_k=top_k, exclude=exclude)
    thumbs = _board_thumbs(run, list(analysis.ids), board, frame_layout(size, top_k).thumb_px)
    loss, loss_note, epochs = _training(run, steps)
    metrics = np.stack(
        [
            np.asarray(getattr(analysis, name, np.full(len(steps), np.nan)), dtype=float)
            for name in ("accuracy", "knn_accuracy", "trustworthiness")
        ],
        axis=1,
    )
    titles, subtitles = _titles(run, steps, epochs, metrics, len(labels))
    if dpi is None:
        dpi = DESIGN_DPI * min(size[0] / DEFAULT_SIZE[0], size[1] / DEFAULT_SIZE[1])
    return Scene(
        steps=steps,
        coords=np.asarray(analysis.coords, dtype=np.float32),
        labels=labels,
        class_names=list(analysis.class_names),
        titles=titles,
        subtitles=subtitles,
        board=board,
        board_scores=[scores[i, rows] for i, rows in enumerate(board)],
        ids=list(analysis.ids),
        thumbs=thumbs,
        loss=loss,
        loss_note=loss_note,
        top_k=top_k,
        tween=tween,
        size=tuple(size),
        dpi=float(dpi),
        order=style.point_shuffle(len(labels)),
        highlight=chosen,
        epochs=epochs,
        issue=issue,
    )
