"""Export: render the approved story as an animation (GIF, MP4 or a self-contained HTML player).

:func:`export` is the gate and the glue: it refuses a run whose review is not approved (or
whose approval is stale) unless forced, builds the :class:`~spotreview.scene.Scene` from the
stored analysis, writes the file(s) with :mod:`spotreview.writers`, records what it did in
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
from spotreview.defaults import TOP_K
from spotreview.errors import ExportError, SpotreviewError
from spotreview.rendering.figure import DEFAULT_SIZE
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
    forced: bool  # exported although the run was not approved
    approval: dict  # state, message, digest of the approval at export time
    at: str  # UTC, ISO 8601

    @property
    def path(self) -> Path:
        """The main file written: the animation, or the still when only a still was written."""
        return Path(self.out if self.out is not None else self.still)


# --- the public entry point ---------------------------------------------------------------


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
    html_player: str = "interactive",
    highlight: Iterable[str] = (),
) -> Exported:
    """Render the approved analysis of ``run`` as an animation; returns what it wrote.

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
    ``workers``: processes that render frames (default: 2 for 16+ frames on 2+ cores
    where forking is safe, else 1); ``quiet`` hides the progress bar, not the warnings.

    ``.html`` is the interactive player (``spotreview.player``) unless ``html_player`` is
    ``"frames"`` (matplotlib's player over the GIF's frames); ``highlight`` ids start pinned.
    """
    run = Run(run).require()
    warn_if_unfinished(run, "exporting")
    anim = None
    if out is not None or still is None:
        anim = Path(out) if out is not None else run.root / "animation.gif"
        fmt = FORMATS.get(anim.suffix.lower())
        if fmt is None:
            raise ExportError(
                f"cannot export to {anim}: unknown format {anim.suffix or '(no suffix)'!r}; use .gif, .mp4 or .html"
            )
        _check_out(anim, "the animation to")
    if html_player not in ("interactive", "frames"):
        raise ExportError(f"html_player must be 'interactive' or 'frames', got {html_player!r}")
    interactive = anim is not None and FORMATS[anim.suffix.lower()] == "html" and html_player == "interactive"
    if still is None and still_step is not None:
        raise ExportError("still_step picks the frame of --still; give --still FILE.png too")
    if still is not None:
        still = Path(still)
        if still.suffix.lower() != ".png":
            raise ExportError(f"--still {still} must be a .png file")
        _check_out(still, "the still to")

    tween = int(tween)
    top_k = int(top_k)
    if tween < 0:
        raise ExportError(f"tween must be 0 or more frames between snapshots, got {tween}")
    if top_k < 1:
        raise ExportError(f"top_k must be at least 1, got {top_k}")
    fmt = FORMATS[anim.suffix.lower()] if anim is not None else None
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
    width, height = _parse_size(size)
    if fmt == "mp4":
        ffmpeg_exe()
        if width % 2 or height % 2:
            width, height = width + width % 2, height + height % 2
            logger.warning("H.264 needs an even frame size; using %dx%d", width, height)
    if dpi is not None and not dpi > 0:
        raise ExportError(f"dpi must be positive, got {dpi:g}")

    # The analysis is loaded (and every embedding hashed) once, for the gate and the frames.
    try:
        analysis, problem = load_analysis(run), None
    except SpotreviewError as e:
        analysis, problem = None, e
    status = approval_status(run, analysis=analysis)
    if status.state != "approved":
        # The status message says why; its own advice is replaced by the full one here.
        if status.state == "missing":
            what, again = f"it is not approved (no {run.approval.name})", ""
        else:
            why = status.message.split(";")[0].removeprefix("stale:").strip()
            what, again = f"its approval is stale ({why})", " again"
        if not force:
            raise ExportError(
                f"cannot export {run.root}: {what}; review it with `spotreview review "
                f"{run.root}`, approve it{again} with `spotreview approve {run.root}`, "
                f"or pass --force to export anyway"
            )

    if analysis is None:
        raise problem
    exclusions = read_exclusions(run)
    snapshot = -1
    if still_step is not None:
        matches = np.flatnonzero(np.asarray(analysis.steps) == int(still_step))
        if not len(matches):
            raise ExportError(
                f"no snapshot at step {still_step}; snapshots are at steps "
                f"{', '.join(str(int(s)) for s in analysis.steps)}"
            )
        snapshot = int(matches[0])
    if status.state != "approved":
        logger.warning("exporting %s although %s; forced, recorded in %s", run.root, what, run.export_record.name)
    scene = build_scene(
        analysis,
        exclude=exclusions,
        top_k=top_k,
        tween=tween,
        size=(width, height),
        dpi=dpi,
        highlight=highlight,
    )

    frames = 0
    if interactive:
        from spotreview.rendering.player import player_data, write_player

        data = player_data(analysis, exclude=exclusions, top_k=top_k, scene=scene)
        write_player(
            anim, data, snapshots_per_second=fps / (tween + 1), highlight=[scene.ids[r] for r in scene.highlight]
        )
        frames = len(data.steps)  # key frames: the page interpolates between them
    elif anim is not None:
        frames = write_animation(scene, anim, fps=fps, workers=workers, quiet=quiet)
    if still is not None:
        write_still(scene, still, snapshot=snapshot)

    record = Exported(
        out=str(anim) if anim is not None else None,
        format=fmt,
        html_player=html_player if interactive else None,
        frames=frames,
        still=str(still) if still is not None else None,
        fps=fps,
        size=[width, height],
        tween=tween,
        top_k=top_k,
        excluded=len(exclusions),
        highlight=[scene.ids[r] for r in scene.highlight],
        forced=bool(force and status.state != "approved"),
        approval={
            "state": status.state,
            "message": status.message,
            "digest": status.record.digest if status.record else None,
        },
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_json(run.export_record, asdict(record))
    return record
