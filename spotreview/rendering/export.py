"""Export: render the approved story as an animation (GIF, MP4 or a self-contained HTML player).

:func:`export` is the gate and the glue: it refuses a run whose review is not approved (or
whose approval is stale) unless forced, builds the :class:`~spotreview.rendering.scene.Scene` from the
stored analysis, writes the file(s) with :mod:`spotreview.rendering.writers`, records what it did in
``export.json`` and returns that record as an :class:`Exported`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from spotreview.analysis.store import load_analysis
from spotreview.defaults import HTML_PLAYER, HTML_PLAYERS, TOP_K, HtmlPlayer
from spotreview.errors import ExportError, SpotreviewError
from spotreview.rendering.figure import DEFAULT_SIZE
from spotreview.rendering.rings import issue_key, issue_rings
from spotreview.rendering.scene import build_scene
from spotreview.rendering.writers import FORMATS, FPS_RANGE, MAX_SIDE, ffmpeg_exe, write_animation, write_still
from spotreview.reviewing.approval import approval_status
from spotreview.rundir.atomic import write_json
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import warn_if_unfinished

logger = logging.getLogger(__name__)


@dataclass
class Exported:
    """What one export wrote; also stored as ``export.json``."""

    out: str | None  # the animation, or None when only a still was asked for
    format: str | None  # "gif" | "mp4" | "html"
    html_player: str | None  # "interactive" for the interactive .html player, else None
    frames: int  # frames written; the interactive player's key frames (one per snapshot)
    still: str | None
    fps: float
    size: list[int]  # [W, H] pixels
    tween: int
    top_k: int
    excluded: int  # reviewer exclusions skipped on the leaderboard
    highlight: list[str]  # ids ringed and labelled in every frame
    highlight_issue: dict | None  # {"key", "title", "ids"}: the issue group ringed in every frame
    forced: bool  # exported although the run was not approved
    approval: dict  # state, message, digest of the approval at export time
    at: str  # UTC, ISO 8601

    @property
    def path(self) -> Path:
        """The main file written: the animation, or the still when only a still was written."""
        return Path(self.out if self.out is not None else self.still)


# --- the public entry point ---------------------------------------------------------------


@dataclass(frozen=True)
class _Args:
    """export()'s arguments, checked and parsed."""

    anim: Path | None  # the animation to write, or None for a still alone
    fmt: str | None  # FORMATS value of ``anim``
    interactive: bool  # ``anim`` is the interactive HTML player
    still: Path | None
    tween: int
    top_k: int
    fps: float
    size: tuple[int, int]  # (W, H) pixels, even for MP4
    dpi: float | None


def _parse_size(size) -> tuple[int, int]:
    if size is None:
        return DEFAULT_SIZE
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError as e:
            raise ExportError(f"size {size!r} is not WxH in pixels, e.g. 1280x720") from e
    else:
        w, h = (int(v) for v in size)
    if w < 320 or h < 180:
        raise ExportError(f"size {w}x{h} is too small to lay out a frame; use at least 320x180")
    if max(w, h) > MAX_SIDE:
        raise ExportError(f"size {w}x{h} is too large; width and height must each be {MAX_SIDE} pixels or less")
    return w, h


def _check_out(path: Path, what: str) -> None:
    if not path.parent.is_dir():
        raise ExportError(
            f"cannot write {what} {path}: directory {path.parent} does not exist; create it or choose another path"
        )


def _check_outputs(run: Run, out, still, still_step, html_player: str) -> tuple[Path | None, Path | None]:
    """(animation path or None, still path or None); ExportError for a bad suffix, a missing
    directory or options that do not go together."""
    anim = None
    if out is not None or still is None:
        anim = Path(out) if out is not None else run.set_dir / "animation.gif"
        if FORMATS.get(anim.suffix.lower()) is None:
            raise ExportError(
                f"cannot export to {anim}: unknown format {anim.suffix or '(no suffix)'!r}; use .gif, .mp4 or .html"
            )
        _check_out(anim, "the animation to")
    if html_player not in HTML_PLAYERS:
        raise ExportError(f"html_player must be 'interactive' or 'frames', got {html_player!r}")
    if still is None and still_step is not None:
        raise ExportError("still_step picks the frame of --still; give --still FILE.png too")
    if still is not None:
        still = Path(still)
        if still.suffix.lower() != ".png":
            raise ExportError(f"--still {still} must be a .png file")
        _check_out(still, "the still to")
    return anim, still


def _check_fps(fps, fmt: str | None, tween: int) -> float:
    """Frames per second, defaulting to two snapshots a second; ExportError if out of range."""
    fps = float(fps) if fps is not None else min(2.0 * (tween + 1), FPS_RANGE["gif"][1])
    if not fps > 0:
        raise ExportError(f"fps must be positive, got {fps:g}")
    if fmt == "gif" and fps > FPS_RANGE["gif"][1]:
        raise ExportError(
            f"fps {fps:g} is too fast for a GIF (viewers slow frames under 20 ms to 100 ms); "
            f"use --fps {FPS_RANGE['gif'][1]:g} or less, or .mp4"
        )
    if fmt is not None and not FPS_RANGE[fmt][0] <= fps <= FPS_RANGE[fmt][1]:
        lo, hi = FPS_RANGE[fmt]
        raise ExportError(f"fps {fps:g} is out of range for {fmt.upper()}; use --fps between {lo:g} and {hi:g}")
    return fps


def _check_export_args(run: Run, out, *, fps, size, dpi, tween, top_k, still, still_step, html_player: str) -> _Args:
    """export()'s arguments checked (one-line ExportError each) before anything is loaded."""
    anim, still = _check_outputs(run, out, still, still_step, html_player)
    fmt = FORMATS[anim.suffix.lower()] if anim is not None else None
    tween = int(tween)
    top_k = int(top_k)
    if tween < 0:
        raise ExportError(f"tween must be 0 or more frames between snapshots, got {tween}")
    if top_k < 1:
        raise ExportError(f"top_k must be at least 1, got {top_k}")
    fps = _check_fps(fps, fmt, tween)
    width, height = _parse_size(size)
    if fmt == "mp4":
        ffmpeg_exe()
        if width % 2 or height % 2:
            width, height = width + width % 2, height + height % 2
            logger.warning("H.264 needs an even frame size; using %dx%d", width, height)
    if dpi is not None and not dpi > 0:
        raise ExportError(f"dpi must be positive, got {dpi:g}")
    return _Args(
        anim=anim,
        fmt=fmt,
        interactive=fmt == "html" and html_player == "interactive",
        still=still,
        tween=tween,
        top_k=top_k,
        fps=fps,
        size=(width, height),
        dpi=dpi,
    )


def _approval(run: Run, analysis) -> dict:
    """The approval status as export.json records it: ``state``, ``message``, ``digest``."""
    status = approval_status(run, analysis=analysis)
    return {"state": status.state, "message": status.message, "digest": status.record.digest if status.record else None}


def _unapproved(run: Run, approval: dict) -> tuple[str, str]:
    """(what is wrong, "" or " again") for a run whose approval is missing or stale."""
    if approval["state"] == "missing":
        return f"it is not approved (no {run.approval.name})", ""
    # The status message says why; its own advice is replaced by export's full one.
    why = approval["message"].split(";")[0].removeprefix("stale:").strip()
    return f"its approval is stale ({why})", " again"


def _gate(run: Run, force: bool):
    """(analysis, approval): the stored analysis, loaded (every embedding hashed) once for
    the gate and the frames. ExportError unless approved and current, or ``force``."""
    try:
        analysis, problem = load_analysis(run), None
    except SpotreviewError as e:
        analysis, problem = None, e
    approval = _approval(run, analysis)
    if approval["state"] != "approved" and not force:
        what, again = _unapproved(run, approval)
        raise ExportError(
            f"cannot export {run.root}: {what}; review it with `spotreview review "
            f"{run.root}`, approve it{again} with `spotreview approve {run.root}`, "
            f"or pass --force to export anyway"
        )
    if analysis is None:
        raise problem
    return analysis, approval


def _snapshot(analysis, still_step: int | None) -> int:
    """Index of the snapshot at ``still_step`` (default the last); ExportError if none is."""
    if still_step is None:
        return -1
    matches = np.flatnonzero(np.asarray(analysis.steps) == int(still_step))
    if not len(matches):
        raise ExportError(
            f"no snapshot at step {still_step}; snapshots are at steps {', '.join(str(int(s)) for s in analysis.steps)}"
        )
    return int(matches[0])


def _write(scene, analysis, args: _Args, exclusions, *, snapshot: int, workers, quiet: bool) -> int:
    """Write the animation and/or the still; returns the frames written (the player's key frames)."""
    frames = 0
    if args.interactive:
        from spotreview.rendering.player import player_data, write_player

        data = player_data(analysis, exclude=exclusions, top_k=args.top_k, scene=scene)
        highlight = [scene.ids[r] for r in scene.highlight]
        write_player(args.anim, data, snapshots_per_second=args.fps / (args.tween + 1), highlight=highlight)
        frames = len(data.steps)  # key frames: the page interpolates between them
    elif args.anim is not None:
        frames = write_animation(scene, args.anim, fps=args.fps, workers=workers, quiet=quiet)
    if args.still is not None:
        write_still(scene, args.still, snapshot=snapshot)
    return frames


def _record(
    args: _Args, scene, *, frames: int, html_player: str, excluded: int, forced: bool, approval: dict
) -> Exported:
    """What export wrote, as :class:`Exported` (stored as export.json)."""
    return Exported(
        out=str(args.anim) if args.anim is not None else None,
        format=args.fmt,
        html_player=html_player if args.interactive else None,
        frames=frames,
        still=str(args.still) if args.still is not None else None,
        fps=args.fps,
        size=list(args.size),
        tween=args.tween,
        top_k=args.top_k,
        excluded=excluded,
        highlight=[scene.ids[r] for r in scene.highlight],
        highlight_issue=scene.issue.record(scene.ids) if scene.issue is not None else None,
        forced=bool(forced),
        approval=approval,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def export(
    run,
    out: str | os.PathLike | None = None,
    *,
    fps: float | None = None,
    size: tuple[int, int] | str | None = None,
    dpi: float | None = None,
    tween: int = 0,
    top_k: int = TOP_K,
    force: bool = False,
    still: str | os.PathLike | None = None,
    still_step: int | None = None,
    workers: int | None = None,
    quiet: bool = False,
    html_player: HtmlPlayer = HTML_PLAYER,
    highlight: Iterable[str] = (),
    highlight_issue: str | None = None,
    image_set: str | None = None,
) -> Exported:
    """Render the approved analysis of ``run`` as an animation; returns what it wrote.

    ``image_set``: ``"train"`` renders the recorded training images (their own approval,
    default ``RUN/train/animation.gif``); None: the set ``run`` views (the evaluation set).
    The format follows the suffix of ``out``: ``.gif`` (default ``RUN/animation.gif``,
    loops forever), ``.mp4`` (H.264) or ``.html`` (self-contained player). There are
    ``S + tween * (S - 1)`` frames for ``S`` snapshots; ``fps`` defaults to two snapshots
    per second whatever ``tween`` is (at most 50 fps). ``size`` is ``(W, H)`` or ``"WxH"`` in pixels
    (default 1280x720); ``dpi`` scales text and markers (default: as designed at 1280x720).

    ``still=FILE.png`` writes the frame of one snapshot as a picture (``still_step``,
    default the last) *instead of* the animation; give ``out`` as well to get both.
    The returned record's ``path`` is then the still, or the animation when both are written.

    Refuses (``ExportError``) unless the review is approved and the approval is current;
    ``force=True`` renders anyway, logs a warning and records ``forced`` in export.json.
    ``highlight``: ids of images ringed and labelled with their id in every frame;
    ExportError (naming them) for ids not in the evaluation set.
    ``highlight_issue``: an issue group of the review (``"likely-mislabelled"``, ...: ``issue_key``)
    ringed in every frame; ExportError for an unknown name, a warning when the group is empty.
    ``workers``: processes that render frames (default: 2 for 16+ frames on 2+ cores
    where forking is safe, else 1); ``quiet`` hides the progress bar, not the warnings.

    ``.html`` is the interactive player (``spotreview.rendering.player``) unless ``html_player`` is
    ``"frames"`` (matplotlib's player over the GIF's frames); ``highlight`` ids start pinned.
    """
    run = Run(run, image_set).require()
    warn_if_unfinished(run, "exporting")
    args = _check_export_args(
        run,
        out,
        fps=fps,
        size=size,
        dpi=dpi,
        tween=tween,
        top_k=top_k,
        still=still,
        still_step=still_step,
        html_player=html_player,
    )
    issue = None if highlight_issue is None else issue_key(highlight_issue)
    analysis, approval = _gate(run, force)
    exclusions = read_exclusions(run)
    snapshot = _snapshot(analysis, still_step)
    unapproved = approval["state"] != "approved"  # and forced: _gate refused otherwise
    if unapproved:
        what, _ = _unapproved(run, approval)
        logger.warning("exporting %s although %s; forced, recorded in %s", run.root, what, run.export_record.name)
    scene = build_scene(
        analysis,
        exclude=exclusions,
        top_k=args.top_k,
        tween=args.tween,
        size=args.size,
        dpi=args.dpi,
        highlight=highlight,
        issue=None if issue is None else issue_rings(analysis, issue, exclude=exclusions),
    )
    frames = _write(scene, analysis, args, exclusions, snapshot=snapshot, workers=workers, quiet=quiet)
    record = _record(
        args,
        scene,
        frames=frames,
        html_player=html_player,
        excluded=len(exclusions),
        forced=force and unapproved,
        approval=approval,
    )
    write_json(run.export_record, asdict(record))
    return record
