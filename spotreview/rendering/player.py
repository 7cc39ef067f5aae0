"""The interactive HTML story: one self-contained file with a small canvas player.

The page (``spotreview/rendering/assets/player.*``, inlined at write time: no network, opens from
disk) interpolates the points between snapshots in the browser, shows any point's image,
id, label, prediction, outlier rank and score and training dynamics on hover, pins clicked
points and draws their path through every snapshot, colours the points by class, correct or
wrong, data-map region or forgetting events (the legend follows and toggles), rings an issue
group's images, and shows the per-snapshot leaderboard, the loss curve with a marker at the
current step and how far the 2-D picture can be trusted there (its trustworthiness, flagged
below ``TRUST_LOW``).

Why a hand-written canvas player and not plotly: plotly is not a dependency of the
project, its hover shows text rather than images, and a sprite atlas plus a spatial grid
keep hover thumbnails of large clouds cheap (see ``benchmarks/RESULTS.md``).

What the file holds:

* ``<script type="application/json" id="spotreview-data">``: readable JSON, one line per
  snapshot and one line per point (id, label, class, per-snapshot ``xy``, ``rank``,
  ``score`` and ``pred``, and ``dyn``: the values of the ``dynamics`` columns), so
  ``grep IMAGE_ID`` finds a point and two exports diff line by line. Coordinates keep 1e-4
  of the axis span, scores 4 significant digits, dynamics 0.001. The scatter's look travels
  with the data (:mod:`spotreview.rendering.style`, as the GIF draws it): ``colors``,
  ``limits``, ``marker`` (diameter as a share of the axes width, alpha), ``order`` (the
  rows in drawing order), ``colour_by`` (:mod:`spotreview.rendering.colouring`) and
  ``issue`` (the ringed group's title, ring colour and rows, or null). Above ``PACK_ABOVE``
  points x snapshots, ``packed`` replaces ``points``: the ids one per line and the values as
  base64 typed arrays (:mod:`spotreview.rendering.packed`).
* ``<script type="application/json" id="spotreview-atlas">``: the thumbnails of every
  point, packed row by row into a few PNG/JPEG sprite atlases (data URIs), reduced to the
  page's :func:`size_budget` where they must be, with full-size tiles of the leaderboards'
  and pinned images after them; the data's ``thumbs`` gives the layout
  (:mod:`spotreview.rendering.atlas`).
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from spotreview.defaults import TRUST_K, TRUST_LOW
from spotreview.errors import ExportError
from spotreview.rendering import style
from spotreview.rendering.atlas import ATLAS_PX, atlases
from spotreview.rendering.colouring import colouring_data
from spotreview.rendering.packed import PACK_ABOVE, packed_points
from spotreview.rundir.atomic import atomic_path
from spotreview.rundir.run import Run

logger = logging.getLogger(__name__)

FORMAT = "spotreview-player/1"
THUMB_PX = 48  # thumbnail side in the atlas; the tooltip shows it at 2x
_SIZE_BUDGET = 24e6  # bytes up to 10,000 points; thumbnails get fewer bytes to keep the file under it
_MAX_SIZE = 56e6  # bytes at most, whatever the number of points


@dataclass
class PlayerData:
    """What the page shows, as plain arrays (no Run or Analysis).

    ``S`` snapshots, ``n`` points, ``C`` classes, ``T`` thumbnail side.
    """

    steps: np.ndarray  # (S,) int64 training step of each snapshot
    coords: np.ndarray  # (S, n, 2) float32 aligned 2-D coordinates
    labels: np.ndarray  # (n,) int64 class index
    class_names: list[str]  # (C,)
    ids: list[str]  # (n,)
    scores: np.ndarray  # (S, n) float64 cleanlab OOD score; lower = more atypical
    ranks: np.ndarray  # (S, n) int64; 1 = most atypical at that snapshot
    board: list[np.ndarray]  # (S,) each (<=k,) int64 rows, most atypical first, exclusions skipped
    thumbs: np.ndarray  # (n, T, T, 3) uint8, one per point
    limits: tuple[float, float, float, float]  # x0, x1, y0, y1: the GIF's fixed axes
    colors: list[str]  # (C,) "#rrggbb", the GIF's class colours
    titles: list[str]  # (S,) "step 100 · epoch 2.00 · ..."
    subtitle: str = ""
    predictions: np.ndarray | None = None  # (S, n) int64 predicted class, or None
    epochs: np.ndarray | None = None  # (S,) float64, NaN where unknown
    accuracy: np.ndarray | None = None  # (S,) float64 eval accuracy, NaN where unknown
    knn_accuracy: np.ndarray | None = None  # (S,) float64, NaN where unknown
    trustworthiness: np.ndarray | None = None  # (S,) float64 of the 2-D picture, NaN where unknown
    loss: tuple[np.ndarray, np.ndarray] | None = None  # (m,) steps, (m,) loss
    loss_note: str = ""  # shown instead of the curve when ``loss`` is None
    excluded: Mapping[str, str] = field(default_factory=dict)  # id -> reviewer's reason
    dynamics: Mapping[str, np.ndarray] = field(default_factory=dict)  # column -> (n,): analysis.dynamics
    issue: object = None  # rendering.rings.IssueRings: an issue group ringed at every snapshot, or None


def player_data(
    analysis,
    *,
    exclude: Mapping[str, str] | Iterable[str] = (),
    top_k: int = 8,
    thumb_px: int = THUMB_PX,
    scene=None,
    thumbs: np.ndarray | None = None,
) -> PlayerData:
    """Collect the page's data from an ``Analysis``, its run's log.csv and images.

    Titles, leaderboard, loss curve, epochs, axes and colours are the GIF's: ``scene`` (built
    here unless the caller has one for the same ``exclude`` and ``top_k``) and the same
    functions. Unreadable images become blank thumbnails, with one warning line. ``thumbs``:
    the (n, T, T, 3) uint8 thumbnails when the caller has them already (another run of the
    same images), else they are read from the run's images.
    """
    from spotreview.rendering.figure import scatter_box_px
    from spotreview.rendering.scene import build_scene
    from spotreview.rendering.thumbnails import placeholder_tile, thumbnail

    exclude = dict(exclude) if isinstance(exclude, Mapping) else {i: "" for i in exclude}
    if scene is None:
        scene = build_scene(analysis, exclude=exclude, top_k=top_k)
    run = Run(analysis.run)
    tiles, missing = [] if thumbs is None else list(thumbs), 0
    for image_id in scene.ids if thumbs is None else ():
        tile = thumbnail(run.image_path(image_id), thumb_px)
        missing += tile is None
        tiles.append(placeholder_tile(thumb_px) if tile is None else tile)
    if missing:
        logger.warning(
            "%d of %d images missing or unreadable under %s; their hover thumbnails are blank",
            missing,
            len(tiles),
            run.images_dir,
        )
    n_snap = len(scene.steps)
    return PlayerData(
        steps=scene.steps,
        coords=scene.coords,
        labels=scene.labels,
        class_names=scene.class_names,
        ids=scene.ids,
        scores=np.asarray(analysis.scores, dtype=np.float64),
        ranks=np.asarray(analysis.ranks, dtype=np.int64),
        board=scene.board,
        thumbs=np.stack(tiles),
        limits=style.axis_limits(scene.coords, scatter_box_px()),  # the GIF's axes, at its aspect
        colors=style.class_hex(len(scene.class_names)),
        titles=scene.titles,
        subtitle=scene.subtitles[0].split(":")[0],
        predictions=analysis.predictions,
        epochs=scene.epochs,
        accuracy=np.asarray(getattr(analysis, "accuracy", np.full(n_snap, np.nan)), float),
        knn_accuracy=np.asarray(getattr(analysis, "knn_accuracy", np.full(n_snap, np.nan)), float),
        trustworthiness=np.asarray(getattr(analysis, "trustworthiness", np.full(n_snap, np.nan)), float),
        loss=scene.loss,
        loss_note=scene.loss_note,
        excluded=exclude,
        dynamics=dict(analysis.dynamics.columns),
        issue=scene.issue,
    )


def write_player(
    path: str | Path, data: PlayerData, *, snapshots_per_second: float = 2.0, highlight: Iterable[str] = ()
) -> Path:
    """Write the self-contained interactive page to ``path``; returns the path.

    ``snapshots_per_second``: the pace at speed 1x (a GIF without tween frames plays at
    ``fps`` snapshots per second). ``highlight``: image ids that start pinned, their paths
    drawn; an unknown id is an ``ExportError`` naming it. The file appears only once complete.
    """
    path = Path(path)
    page = fill_page(page_parts(data, snapshots_per_second=snapshots_per_second, highlight=highlight))
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def page_parts(
    data: PlayerData,
    *,
    snapshots_per_second: float = 2.0,
    highlight: Iterable[str] = (),
    atlas: bool = True,
    reserve: int = 0,
) -> dict[str, str]:
    """The fields of the page template (``assets/player.html``): ``TITLE``, ``CSS``, ``JS``,
    ``DATA`` (the data JSON) and ``ATLAS`` (the thumbnails' sprite atlases as a JSON list of
    data URIs); see :func:`write_player` for the arguments and errors. ``atlas=False`` leaves
    ``ATLAS`` out (a page of two players shares one); ``reserve``: bytes of such a page
    besides this player's, kept out of the atlases' size budget.
    """
    n = _check(data)
    from spotreview.rendering.scene import highlight_rows

    pinned = highlight_rows(list(data.ids), highlight).tolist()  # unknown ids: one ExportError
    if not (math.isfinite(snapshots_per_second) and snapshots_per_second > 0):
        raise ExportError(f"snapshots per second must be positive, got {snapshots_per_second:g}")
    t = int(data.thumbs.shape[1])
    meta = {"px": t, "cols": max(1, ATLAS_PX // t), "count": 0, "detail": None}  # atlas=False: all full size
    doc = _data_json(data, highlight=pinned, pace=float(snapshots_per_second), thumbs=meta)
    assets = resources.files("spotreview.rendering") / "assets"
    parts = {
        "TITLE": html.escape(f"{data.subtitle or 'spotreview'}: {n:,} images, {len(data.steps)} snapshots"),
        "CSS": (assets / "player.css").read_text("utf-8"),
        "JS": (assets / "player.js").read_text("utf-8"),
        "DATA": doc,
    }
    if atlas:
        budget = size_budget(n) - len(doc.encode()) - reserve - 100_000
        first = sorted({int(r) for rows in data.board for r in rows} | set(pinned))  # seen before any hover
        uris, meta = atlases(data.thumbs, budget, detail_rows=first)
        parts["ATLAS"] = "[\n" + ",\n".join(json.dumps(a) for a in uris) + "\n]"
        # The atlases' layout, known now, replaces the placeholder (its own line, see _data_json).
        line = '"thumbs": ' + json.dumps(meta, separators=(",", ":"))
        parts["DATA"] = re.sub(r'^"thumbs": .*(?=,$)', lambda _: line, doc, count=1, flags=re.M)
    return parts


def size_budget(n: int) -> float:
    """Bytes the page may take for ``n`` points: 24 MB up to 10,000 points, then 2.4 kB more a
    point, at most 56 MB (the 60 MB goal at 100,000, with a margin)."""
    return float(np.clip(2400.0 * n, _SIZE_BUDGET, _MAX_SIZE))


def fill_page(parts: Mapping[str, str]) -> str:
    """The page template with its ``@@NAME@@`` fields replaced by ``parts`` in one pass (text
    put in is never read again); fields ``parts`` lacks are left as they are."""
    template = (resources.files("spotreview.rendering") / "assets" / "player.html").read_text("utf-8")
    return re.sub(r"@@(\w+)@@", lambda m: parts.get(m.group(1), m.group(0)), template)


def _check(d: PlayerData) -> int:
    """Number of points; ExportError when the arrays disagree in shape."""
    n_snap, n = len(d.steps), len(d.ids)
    shapes = {
        "coords": (np.shape(d.coords), (n_snap, n, 2)),
        "labels": (np.shape(d.labels), (n,)),
        "scores": (np.shape(d.scores), (n_snap, n)),
        "ranks": (np.shape(d.ranks), (n_snap, n)),
        "thumbs": (np.shape(d.thumbs)[:1], (n,)),
    }
    if d.predictions is not None:
        shapes["predictions"] = (np.shape(d.predictions), (n_snap, n))
    shapes.update({name: (np.shape(v), (n,)) for name, v in d.dynamics.items()})
    for name, (got, want) in shapes.items():
        if got != want:
            raise ExportError(f"player data: {name} has shape {got}, expected {want}")
    if n_snap == 0 or n == 0:
        raise ExportError("player data: nothing to show (no snapshots or no points)")
    if len(d.board) != n_snap or len(d.titles) != n_snap or len(d.colors) != len(d.class_names):
        raise ExportError("player data: board, titles or colours do not match the snapshots/classes")
    return n


def _data_json(d: PlayerData, *, highlight: list[int], pace: float, thumbs: dict) -> str:
    """The page's data as JSON: one line per snapshot and per point (or, above ``PACK_ABOVE``
    points x snapshots, per packed array and per id), the rest one line per key."""
    n_snap, n = len(d.steps), len(d.ids)
    extra, dyn = colouring_data(predictions=d.predictions is not None, dynamics=d.dynamics, issue=d.issue)
    epochs, acc, knn, trust = (
        _finite_or_none(_significant(np.full(n_snap, np.nan) if a is None else np.asarray(a, float), 6))
        for a in (d.epochs, d.accuracy, d.knn_accuracy, d.trustworthiness)
    )

    snapshots = [
        {
            "step": int(d.steps[s]),
            "epoch": epochs[s],
            "accuracy": acc[s],
            "knn_accuracy": knn[s],
            "trustworthiness": trust[s],
            "title": d.titles[s],
            "board": [int(r) for r in d.board[s]],
            "board_ids": [d.ids[int(r)] for r in d.board[s]],
        }
        for s in range(n_snap)
    ]
    if n * n_snap > PACK_ABOVE:
        per_point = {"packed": _packed(d, extra["dynamics"], dyn)}
    else:
        per_point = {"points": _readable_points(d, dyn)}
    loss = None
    if d.loss is not None:
        loss = {
            "step": np.asarray(d.loss[0], np.int64).tolist(),
            "loss": _finite_or_none(_significant(np.asarray(d.loss[1], float), 5)),
        }
    doc = {
        "format": FORMAT,
        "subtitle": d.subtitle,
        "class_names": list(d.class_names),
        "colors": list(d.colors),
        "limits": [float(v) for v in d.limits],
        "marker": _marker(n),
        "order": style.draw_order(d.labels, len(d.class_names)).tolist(),
        "pace": pace,
        "highlight": highlight,
        **extra,  # colour_by, dynamics (what each point's "dyn" holds) and issue
        "excluded": {str(k): str(v) for k, v in d.excluded.items()},
        "loss": loss,
        "loss_note": d.loss_note,
        "trust": {"k": TRUST_K, "low": TRUST_LOW},  # the trustworthiness' neighbours and the value flagged low
        "thumbs": thumbs,
        "snapshots": snapshots,
        **per_point,
    }

    def compact(v) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    lines = []
    for key, value in doc.items():
        if key in ("snapshots", "points"):
            body = ",\n".join(compact(v) for v in value)
            lines.append(f'"{key}": [\n{body}\n]')
        elif key == "packed":  # one line per array, the ids one per line
            ids = ",\n".join(compact(v) for v in value["ids"])
            arrays = [f'"{k}": {compact(v)}' for k, v in value.items() if k != "ids"]
            lines.append('"packed": {\n' + ",\n".join([f'"ids": [\n{ids}\n]', *arrays]) + "\n}")
        else:
            lines.append(f'"{key}": {compact(value)}')
    # "<" only occurs inside strings; escaped, no id can end the <script> element early.
    return ("{\n" + ",\n".join(lines) + "\n}").replace("<", "\\u003c")


def _packed(d: PlayerData, dyn_names: list[str], dyn: list | None) -> dict:
    return packed_points(
        ids=list(d.ids),
        labels=d.labels,
        coords=d.coords,
        ranks=d.ranks,
        scores=d.scores,
        predictions=d.predictions,
        dyn_names=dyn_names,
        dyn_rows=dyn,
        n_classes=len(d.class_names),
    )


def _readable_points(d: PlayerData, dyn: list | None) -> list[dict]:
    """One dict per point: id, label, class and per snapshot ``xy`` (to 1e-4 of the axes),
    ``rank``, ``score`` (4 significant digits) and ``pred``, and its ``dyn`` values."""
    n_snap, n = len(d.steps), len(d.ids)
    x0, x1, y0, y1 = d.limits
    decimals = max(0, 4 - math.floor(math.log10(max(x1 - x0, y1 - y0, 1e-12))))
    xy = _finite_or_none(np.round(np.asarray(d.coords, np.float64), decimals))
    scores = _finite_or_none(_significant(np.asarray(d.scores, np.float64), 4))
    ranks = np.asarray(d.ranks, np.int64).T.tolist()
    preds = None if d.predictions is None else np.asarray(d.predictions, np.int64).T.tolist()
    labels = np.asarray(d.labels, np.int64).tolist()
    points = []
    for i in range(n):
        point = {
            "id": str(d.ids[i]),
            "label": labels[i],
            "class": d.class_names[labels[i]],
            "xy": [xy[s][i] for s in range(n_snap)],
            "rank": ranks[i],
            "score": [scores[s][i] for s in range(n_snap)],
        }
        if preds is not None:
            point["pred"] = preds[i]
        if dyn is not None:
            point["dyn"] = dyn[i]
        points.append(point)
    return points


def _marker(n: int) -> dict:
    """A point's marker as the GIF draws it: ``diameter`` as a share of the scatter's width
    (the page scales it to its canvas) and ``alpha``."""
    from spotreview.rendering.figure import DESIGN_DPI, scatter_box_px

    diameter_px = math.sqrt(style.marker_area(n)) * DESIGN_DPI / 72  # at the GIF's design size
    return {"diameter": diameter_px / scatter_box_px()[0], "alpha": style.marker_alpha(n)}


def _significant(a: np.ndarray, digits: int) -> np.ndarray:
    """``a`` rounded to ``digits`` significant digits (zeros and non-finite values kept)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mag = np.where(np.isfinite(a) & (a != 0), np.floor(np.log10(np.abs(a))), 0)
        e = digits - 1 - mag
        # Only exact powers of ten (10**e for e >= 0) keep the shortest decimal repr.
        up, down = 10.0 ** np.maximum(e, 0), 10.0 ** np.maximum(-e, 0)
        return np.where(np.isfinite(a), np.round(a * up / down) * down / up, a)


def _finite_or_none(a: np.ndarray) -> list:
    """Nested lists of Python floats with NaN/inf as None (JSON null)."""
    if np.isfinite(a).all():
        return a.tolist()
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()
