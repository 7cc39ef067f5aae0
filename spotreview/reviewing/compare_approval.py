"""Approval of a comparison: who approved two runs, side by side, for a comparison export, and
the digests of both runs' parts that they approved.

A comparison is reviewed as ``review RUN_A --compare RUN_B``: A is the run under review, B the
run it is held against (often a baseline that many runs are compared with, perhaps one the
reviewer cannot write to). So the record lives in A, in a folder of its own per B::

    RUN_A/comparisons/<B's folder name>-<sha256 of B's absolute path, 12 hex>/
        approval.json   ComparisonApproval: by, at, digest, and for each run its path,
                        approval digest and parts (``approval.approval_preview``)
        export.json     what the last ``spotreview compare`` wrote (rendering.compare)

Each run's parts are exactly what its own approval covers (``approval.PARTS``: analysis,
exclusions, layout, class names, eval.csv, images, loss log), so a change in either run makes
the comparison's approval stale, and the status names the run and the part that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from spotreview.errors import SpotreviewError
from spotreview.reviewing.approval import PART_NAMES, PARTS, ApprovalStatus, approval_preview
from spotreview.rundir.atomic import sha256_bytes, write_json
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import warn_if_unfinished

SIDES = ("a", "b")


@dataclass(frozen=True)
class ComparisonApproval:
    """An approval of two runs for a comparison export; ``approval.json`` of the comparison's
    folder (:func:`comparison_dir`) holds these fields as a JSON object."""

    by: str  # who approved
    at: str | None  # when, UTC, ISO 8601 (None: not recorded)
    digest: str  # sha256 hex over both runs' approval digests, A first
    a: dict  # run A: {"run": absolute path, "digest": sha256 hex over its parts, "parts": {part: sha256 hex}}
    b: dict  # run B, the same
    layout: str | None  # the approved layout file (absolute), None for the default layout
    spotreview_version: str | None  # the spotreview that recorded it


def comparison_dir(run_a, run_b) -> Path:
    """The folder in run A that holds the comparison with run B (see the module docstring)."""
    run_a, run_b = Run(run_a), Run(run_b)
    key = hashlib.sha256(str(run_b.set_dir.resolve()).encode()).hexdigest()[:12]
    return run_a.set_dir / "comparisons" / f"{run_b.root.resolve().name}-{key}"


def _approval_path(run_a: Run, run_b: Run) -> Path:
    return comparison_dir(run_a, run_b) / "approval.json"


def _hint(run_a: Run, run_b: Run) -> str:
    return f"`spotreview approve {run_a.label} --compare {run_b.root}`"


def _record(run_a: Run, run_b: Run, *, by: str | None, layout, analyses) -> ComparisonApproval:
    """The record of both runs as they are now (``approval_preview`` of each), ``at`` None."""
    from spotreview import __version__

    layout = None if layout is None else str(Path(layout).resolve())
    sides, who = {}, by
    for side, run, analysis in zip(SIDES, (run_a, run_b), analyses):
        preview = approval_preview(run, by=by, layout=layout, analysis=analysis)
        sides[side] = {"run": str(run.root.resolve()), "digest": preview.digest, "parts": preview.parts}
        who = preview.by
    return ComparisonApproval(
        by=who,
        at=None,
        digest=sha256_bytes(f"a:{sides['a']['digest']}\nb:{sides['b']['digest']}\n".encode()),
        a=sides["a"],
        b=sides["b"],
        layout=layout,
        spotreview_version=__version__,
    )


def preview_comparison(
    run_a, run_b, *, by: str | None = None, layout: str | os.PathLike | None = None, analyses=(None, None)
) -> ComparisonApproval:
    """What :func:`approve_comparison` would record now, without recording it (``at`` None).

    Refused (``DataError``, one line) unless both runs hold the same evaluation set
    (``reviewing.compare.check_comparable``); both analyses must be current and a given layout
    file valid (``approval_preview``'s one-line errors). ``by``: default the OS user;
    ``analyses``: the runs' analyses when the caller loaded them already.
    """
    from spotreview.reviewing.compare import check_comparable

    run_a = Run(run_a).require()
    run_b = Run(run_b, run_a.image_set).require()
    check_comparable(run_a, run_b)
    return _record(run_a, run_b, by=by, layout=layout, analyses=analyses)


def approve_comparison(
    run_a,
    run_b,
    *,
    by: str | None = None,
    layout: str | os.PathLike | None = None,
    analyses=(None, None),
) -> ComparisonApproval:
    """Record that ``by`` (default: the OS user) approved the comparison of ``run_a`` with
    ``run_b`` for export, now; returns the record written (``approval.json`` of
    :func:`comparison_dir`).

    See :func:`preview_comparison` for the errors and ``analyses``.
    """
    run_a = Run(run_a).require()
    run_b = Run(run_b, run_a.image_set).require()
    for run in (run_a, run_b):
        warn_if_unfinished(run, "approving")
    preview = preview_comparison(run_a, run_b, by=by, layout=layout, analyses=analyses)
    record = replace(preview, at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = _approval_path(run_a, run_b)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(record))
    return record


def _read_record(path: Path) -> ComparisonApproval:
    """``approval.json`` of a comparison; ValueError, KeyError or TypeError when it is not one."""
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not all(isinstance(record[s], dict) for s in SIDES):
        raise TypeError("sides")
    if not all(isinstance(record[s]["parts"], dict) for s in SIDES) or not isinstance(record["layout"] or "", str):
        raise TypeError("parts")
    written = [f.name for f in fields(ComparisonApproval) if f.name != "spotreview_version"]
    return ComparisonApproval(**{k: record[k] for k in written}, spotreview_version=record.get("spotreview_version"))


def comparison_approval_status(run_a, run_b, *, analyses=(None, None)) -> ApprovalStatus:
    """Whether the comparison of ``run_a`` with ``run_b`` is approved for export now, and if
    not, why (one line naming the run and the part that changed). The status's ``record`` is
    the :class:`ComparisonApproval` on disk, when it can be read.

    ``analyses``: the runs' analyses when the caller loaded them already (else each is loaded,
    hashing its embedding files, only when an approval exists).
    """
    run_a = Run(run_a).require()
    run_b = Run(run_b, run_a.image_set).require()
    path = _approval_path(run_a, run_b)
    again = f"review it with `spotreview review {run_a.label} --compare {run_b.root}` and run {_hint(run_a, run_b)}"
    if not path.is_file():
        return ApprovalStatus("missing", f"the comparison is not approved; {again}", None)
    try:
        record = _read_record(path)
    except (ValueError, KeyError, TypeError, RecursionError):
        return ApprovalStatus("stale", f"stale: {path} is unreadable; {again}", None)
    if record.layout is not None and not Path(record.layout).is_file():
        return ApprovalStatus("stale", f"stale: the approved layout file {record.layout} is gone; {again}", record)
    try:
        now = asdict(_record(run_a, run_b, by=record.by, layout=record.layout, analyses=analyses))
    except SpotreviewError as e:
        return ApprovalStatus("stale", f"stale: {e}", record)
    changed = [
        f"{side.upper()}'s {PART_NAMES[k].removeprefix('the ')}"
        for side in SIDES
        for k in PARTS
        if getattr(record, side)["parts"].get(k) != now[side]["parts"][k]
    ]
    if changed:
        when = f"since {record.by} approved it at {record.at}"
        return ApprovalStatus("stale", f"stale: {', '.join(changed)} changed {when}; {again}", record)
    return ApprovalStatus("approved", f"the comparison is approved by {record.by} at {record.at}", record)
