"""Approval: who approved a run for export, when, and a digest of exactly what they approved.

``approve(run)`` writes ``approval.json``: who, when, and the sha256 digests of everything
the export draws: the stored analysis files, the exclusions, the layout, the class names
(manifest.json), eval.csv (ids, labels, image paths), the images by content and log.csv. ``approval_status(run)`` recomputes them
and says which part changed since. Both take an already loaded ``analysis`` so a caller
that has one (``export``, ``run_status``) does not hash every embedding file again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from spotreview.analysis.store import Analysis, analysis_digest, load_analysis
from spotreview.errors import SpotreviewError
from spotreview.reviewing.layouts import load_layout
from spotreview.rundir.atomic import sha256_bytes, sha256_file, write_json
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import warn_if_unfinished

PARTS = ("analysis", "exclusions", "layout", "class_names", "eval_set", "images", "loss_log")
# How ``status`` names each part when it changed.
PART_NAMES = {
    "analysis": "the analysis",
    "exclusions": "the exclusions",
    "layout": "the layout",
    "class_names": "the class names (manifest.json)",
    "eval_set": "the ids, labels or image paths (eval.csv)",
    "images": "the images",
    "loss_log": "the loss log (log.csv)",
}


def _file_digest(path: str | os.PathLike) -> str:
    return sha256_file(path) if os.path.isfile(path) else "missing"


def _images_digest(run: Run) -> str:
    """sha256 over the content of every image eval.csv lists (confined to the run), in order,
    and of ``images/ID.png`` where that is another file (the animation's thumbnails)."""
    h = hashlib.sha256()
    table = read_eval_columns(run)
    for image_id, rel, path in zip(table["id"], table["image"], table["path"]):
        h.update(_file_digest(path).encode() + b"\n")
        if Path(rel) != Path("images", f"{image_id}.png"):
            h.update(_file_digest(run.image_path(image_id)).encode() + b"\n")
    return h.hexdigest()


def _layout_bytes(layout_path: str | os.PathLike | None) -> bytes:
    if layout_path is None:
        # The default layout is code, so the spotreview version that builds it identifies it;
        # serialising it would import Spotlight (~7 s) in every `status` and `export`.
        from spotreview import __version__

        return f"default layout of spotreview {__version__}".encode()
    return Path(layout_path).read_bytes()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def approval_parts(run, *, layout: str | os.PathLike | None = None, analysis: Analysis | None = None) -> dict:
    """What ``approve`` would record now: ``{"parts": {part: sha256 hex}
    for every part in PARTS, "digest": sha256 over the parts, "layout": absolute path or None,
    "exclusions": {id: reason}, "steps": [first, last], "snapshots": count}``.

    The analysis must be present and up to date (``load_analysis``); a given layout file
    must be valid (``load_analysis`` / ``load_layout`` errors otherwise). ``analysis``: the
    run's analysis if the caller loaded it already (it is loaded, and checked, otherwise).
    """
    run = Run(run).require()
    a = analysis if analysis is not None else load_analysis(run)
    if layout is not None:
        load_layout(layout)
        layout = str(Path(layout).resolve())
    exclusions = read_exclusions(run)
    parts = {
        "analysis": analysis_digest(run),
        # Canonical JSON: what was excluded matters, not the file's whitespace.
        "exclusions": sha256_bytes(_canonical(exclusions)),
        "layout": sha256_bytes(_layout_bytes(layout)),
        # What the animation draws besides the analysis: names, the eval set, pixels, loss.
        "class_names": sha256_bytes(
            _canonical(run.read_manifest().get("class_names") if run.manifest.is_file() else None)
        ),
        "eval_set": _file_digest(run.eval_csv),
        "images": _images_digest(run),
        "loss_log": _file_digest(run.log_csv),
    }
    return {
        "parts": parts,
        "digest": sha256_bytes("".join(f"{k}:{parts[k]}\n" for k in PARTS).encode()),
        "layout": layout,
        "exclusions": exclusions,
        "steps": [int(a.steps[0]), int(a.steps[-1])],
        "snapshots": int(len(a.steps)),
    }


def format_parts(run, parts: dict, *, by: str) -> str:
    """What ``approval_parts`` says will be approved, as lines for a terminal."""
    excl = parts["exclusions"]
    first, last = parts["steps"]
    shown = ", ".join(list(excl)[:5]) + (", ..." if len(excl) > 5 else "")
    return "\n".join(
        [
            f"Approving {Run(run).root} for export:",
            f"  analysis:   {parts['snapshots']} snapshot(s), steps {first} .. {last} "
            f"(sha256 {parts['parts']['analysis'][:12]})",
            f"  exclusions: {len(excl)}" + (f" ({shown})" if excl else ""),
            f"  layout:     {parts['layout'] or 'default layout'}",
            f"  by:         {by}",
        ]
    )


def os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container without USER): still record something
        return "unknown"


def approve(
    run,
    *,
    by: str | None = None,
    layout: str | os.PathLike | None = None,
    analysis: Analysis | None = None,
) -> dict:
    """Record that ``by`` (default: the OS user) approved ``run`` for export, now.

    Writes and returns the ``approval.json`` record: ``by``, ``at`` (UTC, ISO 8601),
    ``digest`` and ``parts`` (see ``approval_parts``), ``layout`` (file or None for the
    default layout), ``exclusions`` and the snapshot ``steps`` that were approved.
    """
    from spotreview import __version__

    run = Run(run)
    warn_if_unfinished(run, "approving")
    record = approval_parts(run, layout=layout, analysis=analysis)
    record.update(
        by=by or os_user(),
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        spotreview_version=__version__,
    )
    write_json(run.approval, record)
    return record


@dataclass
class ApprovalStatus:
    state: str  # "approved" | "stale" | "missing"
    message: str  # one line for users
    record: dict | None


def approval_status(run, *, analysis: Analysis | None = None) -> ApprovalStatus:
    """Whether ``run`` is approved for export, and if not, why (one line).

    ``analysis``: the run's analysis if the caller loaded it already; without it the
    analysis is loaded (hashing every embedding file) only when an approval exists.
    """
    run = Run(run).require()
    again = f"review and run `spotreview approve {run.root}` again"
    if not run.approval.is_file():
        return ApprovalStatus("missing", f"not approved; review it and run `spotreview approve {run.root}`", None)
    try:
        record = json.loads(run.approval.read_text(encoding="utf-8"))
        approved, who, when = record["parts"], record["by"], record["at"]
        if not isinstance(approved, dict) or not isinstance(record.get("layout") or "", str):
            raise TypeError("parts or layout")
    except (ValueError, KeyError, TypeError, RecursionError):  # ValueError: bad JSON or UTF-8
        return ApprovalStatus("stale", f"stale: {run.approval} is unreadable; {again}", None)
    layout = record.get("layout")
    if layout is not None and not Path(layout).is_file():
        return ApprovalStatus("stale", f"stale: the approved layout file {layout} is gone; {again}", record)
    try:
        now = approval_parts(run, layout=layout, analysis=analysis)["parts"]
    except SpotreviewError as e:
        return ApprovalStatus("stale", f"stale: {e}", record)
    changed = [k for k in PARTS if approved.get(k) != now[k]]
    if changed:
        what = ", ".join(PART_NAMES[k] for k in changed)
        return ApprovalStatus("stale", f"stale: {what} changed since {who} approved it at {when}; {again}", record)
    return ApprovalStatus("approved", f"approved by {who} at {when}", record)
