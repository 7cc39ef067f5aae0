"""Approval: who approved a run for export, when, and a digest of exactly what they approved.

``approve(run)`` writes ``approval.json`` (an :class:`Approval`): who, when, and the sha256
digests of everything the export draws: the stored analysis files, the exclusions, the
layout, the class names (manifest.json), eval.csv (ids, labels, image paths), the images by
content and log.csv. ``approval_preview(run)`` says what would be approved, without
recording it. ``approval_status(run)`` recomputes the digests and says which part changed
since. All take an already loaded ``analysis`` so a caller that has one (``export``,
``run_status``) does not hash every embedding file again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

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


@dataclass(frozen=True)
class Approval:
    """An approval of a run for export: who, when, and the digests of what was approved.

    ``approval.json`` holds these fields as a JSON object; :func:`approval_preview` returns
    one with ``at`` None (not recorded).
    """

    by: str  # who approved
    at: str | None  # when, UTC, ISO 8601 (None: a preview, not recorded)
    digest: str  # sha256 hex over ``parts``, in PARTS order
    parts: dict[str, str]  # {part: sha256 hex} for every part in PARTS
    layout: str | None  # the approved layout file (absolute), None for the default layout
    exclusions: dict[str, str]  # {id: reason} excluded when approved
    steps: list[int]  # [first, last] snapshot step of the approved analysis
    snapshots: int  # snapshots in the approved analysis
    spotreview_version: str | None  # the spotreview that recorded it


ApprovalState = Literal["approved", "stale", "missing"]


@dataclass(frozen=True)
class ApprovalStatus:
    """Whether a run is approved for export now (:func:`approval_status`)."""

    state: ApprovalState  # missing: never approved; stale: something approved changed since
    message: str  # one line for people, saying why and what to run
    record: Approval | None  # the approval on disk, when it can be read

    @property
    def approved(self) -> bool:
        return self.state == "approved"


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
        # serialising it would import Spotlight, slow to import, in every `status` and `export`.
        from spotreview import __version__

        return f"default layout of spotreview {__version__}".encode()
    return Path(layout_path).read_bytes()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _current_parts(run: Run, layout: str | None, analysis: Analysis | None) -> dict:
    """The digests ``approve`` would record now, and what they cover (the keys of
    :class:`Approval` but ``by``, ``at`` and ``spotreview_version``)."""
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


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container without USER): still record something
        return "unknown"


def approval_preview(
    run,
    *,
    by: str | None = None,
    layout: str | os.PathLike | None = None,
    analysis: Analysis | None = None,
) -> Approval:
    """What :func:`approve` would record now, without recording it (``at`` is None).

    The analysis must be present and up to date (``load_analysis``), a given layout file
    valid (``load_layout``); their one-line errors otherwise. ``by``: default the OS user.
    ``analysis``: the run's analysis if the caller loaded it already (loaded, and checked,
    otherwise).
    """
    from spotreview import __version__

    run = Run(run).require()
    current = _current_parts(run, None if layout is None else str(layout), analysis)
    return Approval(by=by or _os_user(), at=None, spotreview_version=__version__, **current)


def approve(
    run,
    *,
    by: str | None = None,
    layout: str | os.PathLike | None = None,
    analysis: Analysis | None = None,
) -> Approval:
    """Record that ``by`` (default: the OS user) approved ``run`` for export, now.

    Writes ``approval.json`` (the fields of the returned :class:`Approval`); see
    :func:`approval_preview` for the errors and ``analysis``.
    """
    run = Run(run)
    warn_if_unfinished(run, "approving")
    preview = approval_preview(run, by=by, layout=layout, analysis=analysis)
    record = replace(preview, at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_json(run.approval, asdict(record))
    return record


def _read_record(run: Run) -> Approval:
    """``approval.json`` as an :class:`Approval`; ValueError (bad JSON or UTF-8), KeyError or
    TypeError when it is not what :func:`approve` writes."""
    record = json.loads(run.approval.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record["parts"], dict):
        raise TypeError("parts")
    if not isinstance(record["layout"] or "", str):
        raise TypeError("layout")
    written = [f.name for f in fields(Approval) if f.name != "spotreview_version"]
    return Approval(**{k: record[k] for k in written}, spotreview_version=record.get("spotreview_version"))


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
        record = _read_record(run)
    except (ValueError, KeyError, TypeError, RecursionError):  # ValueError: bad JSON or UTF-8
        return ApprovalStatus("stale", f"stale: {run.approval} is unreadable; {again}", None)
    who, when = record.by, record.at
    if record.layout is not None and not Path(record.layout).is_file():
        return ApprovalStatus("stale", f"stale: the approved layout file {record.layout} is gone; {again}", record)
    try:
        now = _current_parts(run, record.layout, analysis)["parts"]
    except SpotreviewError as e:
        return ApprovalStatus("stale", f"stale: {e}", record)
    changed = [k for k in PARTS if record.parts.get(k) != now[k]]
    if changed:
        what = ", ".join(PART_NAMES[k] for k in changed)
        return ApprovalStatus("stale", f"stale: {what} changed since {who} approved it at {when}; {again}", record)
    return ApprovalStatus("approved", f"approved by {who} at {when}", record)
