"""Compare two runs in one animation: ``spotreview compare RUN_A RUN_B -o cmp.gif | .mp4 | .html``.

:func:`compare` is to two runs what :func:`~spotreview.rendering.export.export` is to one: it
refuses runs of different evaluation sets (``reviewing.compare.check_comparable``) and a
comparison whose approval (``reviewing.compare_approval``) is missing or stale unless forced,
builds the :class:`~spotreview.rendering.compare_scene.ComparisonScene` from both stored
analyses, writes the GIF or MP4 (:class:`~spotreview.rendering.compare_figure.ComparisonRenderer`
through :mod:`spotreview.rendering.writers`) or the two-player HTML page
(:mod:`spotreview.rendering.compare_player`), and records what it did in the comparison's
``export.json`` (in run A, beside the comparison's approval).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from spotreview.analysis.store import load_analysis
from spotreview.defaults import SYNC, SYNC_MODES, TOP_K, TWEEN, SyncMode
from spotreview.errors import ExportError, SpotreviewError
from spotreview.rendering.compare_figure import ComparisonRenderer
from spotreview.rendering.compare_scene import build_comparison_scene, permuted
from spotreview.rendering.export import _check_export_args
from spotreview.rendering.writers import write_animation
from spotreview.reviewing.compare import check_comparable
from spotreview.reviewing.compare_approval import comparison_approval_status, comparison_dir
from spotreview.rundir.atomic import write_json
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import warn_if_unfinished

logger = logging.getLogger(__name__)


@dataclass
class Compared:
    """What one comparison export wrote; also stored as the comparison's ``export.json``."""

    out: str  # the file written
    format: str  # "gif" | "mp4" | "html"
    runs: list[str]  # [A, B]: the runs' folders, absolute
    sync: str  # "progress" | "step" | "epoch"
    frames: int  # frames written; the HTML page's key frames
    fps: float
    size: list[int]  # [W, H] pixels (GIF, MP4)
    tween: int
    top_k: int
    board: list[str]  # ids of the images whose outcome differs most, most first
    counts: dict[str, int]  # images fixed, broken, both right, both wrong (empty without predictions)
    excluded: int  # reviewer exclusions (of either run) skipped on the leaderboards
    forced: bool  # written although the comparison was not approved
    approval: dict  # state, message, digest of the comparison's approval at export time
    at: str  # UTC, ISO 8601

    @property
    def path(self) -> Path:
        return Path(self.out)


def _gate(run_a: Run, run_b: Run, force: bool):
    """(analyses, approval dict): both stored analyses, loaded once for the gate and the frames;
    ExportError unless the comparison is approved and current, or ``force``."""
    analyses, problem = [], None
    for run in (run_a, run_b):
        try:
            analyses.append(load_analysis(run))
        except SpotreviewError as e:
            analyses.append(None)
            problem = problem or e
    status = comparison_approval_status(run_a, run_b, analyses=analyses)
    approval = {
        "state": status.state,
        "message": status.message,
        "digest": status.record.digest if status.record else None,
    }
    if status.state != "approved" and not force:
        what = "it is not approved" if status.state == "missing" else status.message.split(";")[0]
        raise ExportError(
            f"cannot compare {run_a.label} and {run_b.root}: {what}; review them with `spotreview review "
            f"{run_a.label} --compare {run_b.root}`, approve with `spotreview approve {run_a.label} --compare "
            f"{run_b.root}`, or pass --force to export anyway"
        )
    if problem is not None:
        raise problem
    return analyses, approval


def _checked_args(run_a: Run, out, *, sync: str, **options):
    """compare()'s arguments checked as export's are (one-line ExportError each), before anything
    is loaded; ``out`` is required."""
    if out is None:
        raise ExportError("give the comparison's file with -o/--out: .gif, .mp4 or .html")
    if sync not in SYNC_MODES:
        raise ExportError(f"unknown sync {sync!r}; use one of {', '.join(SYNC_MODES)}")
    return _check_export_args(run_a, out, still=None, still_step=None, html_player="interactive", **options)


def _write(scene, analyses, args, exclusions: dict, *, workers, quiet: bool) -> int:
    """Write the GIF or MP4 (frames written) or the HTML page (key frames)."""
    if args.fmt == "html":
        from spotreview.rendering.compare_player import write_comparison_player

        pace = args.fps / (args.tween + 1)  # key frames per second
        return write_comparison_player(args.anim, scene, analyses, exclude=exclusions, snapshots_per_second=pace)
    return write_animation(scene, args.anim, fps=args.fps, workers=workers, quiet=quiet, renderer=ComparisonRenderer)


def compare(
    run_a,
    run_b,
    out: str | os.PathLike,
    *,
    sync: SyncMode = SYNC,
    fps: float | None = None,
    size: tuple[int, int] | str | None = None,
    dpi: float | None = None,
    tween: int = TWEEN,
    top_k: int = TOP_K,
    force: bool = False,
    workers: int | None = None,
    quiet: bool = False,
    image_set: str | None = None,
) -> Compared:
    """Render runs ``run_a`` and ``run_b`` (the same evaluation images) side by side in one
    animation at ``out``; returns what it wrote.

    The format follows the suffix of ``out``: ``.gif``, ``.mp4`` or ``.html`` (two interactive
    players, one per run, on one clock: a point hovered or pinned in one is shown in both).
    Each panel is its run's aligned cloud at its own fixed axes, in the same class colours, with
    its loss curve and accuracy; a leaderboard lists the ``top_k`` images whose outcome differs
    most (fixed or broken by B first), ringed and numbered in both panels. ``sync`` lines the
    runs up: ``"progress"`` (a snapshot's step as a share of its run's last snapshot's step),
    ``"step"`` or ``"epoch"``; the key frames are every snapshot of either run. ``fps``,
    ``size``, ``dpi``, ``tween``, ``workers``, ``quiet`` as for ``export``; ``image_set``:
    ``"train"`` compares the runs' recorded training images.

    Refuses with one line (``DataError``) runs of different evaluation sets or class names, and
    (``ExportError``) unless the comparison is approved (``approve_comparison``) and neither
    run changed since; ``force=True`` renders anyway, logs a warning and records ``forced``.
    """
    run_a = Run(run_a, image_set).require()
    run_b = Run(run_b, run_a.image_set).require()
    args = _checked_args(run_a, out, sync=sync, fps=fps, size=size, dpi=dpi, tween=tween, top_k=top_k)
    rows_b = check_comparable(run_a, run_b)
    for run in (run_a, run_b):
        warn_if_unfinished(run, "exporting")
    (analysis_a, analysis_b), approval = _gate(run_a, run_b, force)
    unapproved = approval["state"] != "approved"
    if unapproved:
        logger.warning("comparing %s and %s although %s; forced, recorded", run_a.root, run_b.root, approval["message"])
    exclusions = {**read_exclusions(run_b), **read_exclusions(run_a)}
    analyses = (analysis_a, permuted(analysis_b, rows_b))  # B's rows in A's order
    scene = build_comparison_scene(
        *analyses, sync=sync, exclude=exclusions, top_k=args.top_k, tween=args.tween, size=args.size, dpi=args.dpi
    )
    frames = _write(scene, analyses, args, exclusions, workers=workers, quiet=quiet)
    record = Compared(
        out=str(args.anim),
        format=args.fmt,
        runs=[str(run_a.root.resolve()), str(run_b.root.resolve())],
        sync=sync,
        frames=frames,
        fps=args.fps,
        size=list(args.size),
        tween=args.tween,
        top_k=args.top_k,
        board=[scene.ids[int(r)] for r in scene.board],
        counts=dict(scene.counts),
        excluded=len(exclusions),
        forced=bool(force and unapproved),
        approval=approval,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    where = comparison_dir(run_a, run_b)
    where.mkdir(parents=True, exist_ok=True)
    write_json(where / "export.json", asdict(record))
    return record
