"""Approval: who approved a run for export, when, and a digest of exactly what they approved.

``approve(run)`` writes ``approval.json``: who, when, and the sha256 digests of the stored
analysis files, the exclusions and the layout. ``approval_status(run)`` recomputes them
and says which part changed since. Both take an already loaded ``analysis`` so a caller
that has one (``export``, ``run_status``) does not hash every embedding file again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .analysis_store import Analysis, analysis_digest, load_analysis
from .errors import SpotreviewError
from .layouts import load_layout
from .rundir import Run, sha256_bytes, write_json
from .traininglog import warn_if_unfinished

PARTS = ("analysis", "exclusions", "layout")


def _layout_bytes(layout_path: str | os.PathLike | None) -> bytes:
    if layout_path is None:
        # The default layout is code, so the spotreview version that builds it identifies it;
        # serialising it would import Spotlight (~7 s) in every `status` and `export`.
        from . import __version__

        return f"default layout of spotreview {__version__}".encode("utf-8")
    return Path(layout_path).read_bytes()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def approval_parts(
    run, *, layout: str | os.PathLike | None = None, analysis: Analysis | None = None
) -> dict:
    """What ``approve`` would record now: ``{"parts": {analysis, exclusions, layout}
    (sha256 hex each), "digest": sha256 over the parts, "layout": absolute path or None,
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
    exclusions = run.read_exclusions()
    parts = {
        "analysis": analysis_digest(run),
        # Canonical JSON: what was excluded matters, not the file's whitespace.
        "exclusions": sha256_bytes(_canonical(exclusions)),
        "layout": sha256_bytes(_layout_bytes(layout)),
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
    return "\n".join([
        f"Approving {Run(run).root} for export:",
        f"  analysis:   {parts['snapshots']} snapshot(s), steps {first} .. {last} "
        f"(sha256 {parts['parts']['analysis'][:12]})",
        f"  exclusions: {len(excl)}" + (f" ({shown})" if excl else ""),
        f"  layout:     {parts['layout'] or 'default layout'}",
        f"  by:         {by}",
    ])


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
    from . import __version__

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
        return ApprovalStatus(
            "missing", f"not approved; review it and run `spotreview approve {run.root}`", None
        )
    try:
        record = json.loads(run.approval.read_text(encoding="utf-8"))
        approved, who, when = record["parts"], record["by"], record["at"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return ApprovalStatus("stale", f"stale: {run.approval} is unreadable; {again}", None)
    layout = record.get("layout")
    if layout is not None and not Path(layout).is_file():
        return ApprovalStatus(
            "stale", f"stale: the approved layout file {layout} is gone; {again}", record
        )
    try:
        now = approval_parts(run, layout=layout, analysis=analysis)["parts"]
    except SpotreviewError as e:
        return ApprovalStatus("stale", f"stale: {e}", record)
    changed = [k for k in PARTS if approved.get(k) != now[k]]
    if changed:
        what = " and ".join(
            {"analysis": "the analysis", "exclusions": "the exclusions", "layout": "the layout"}[k]
            for k in changed
        )
        return ApprovalStatus(
            "stale", f"stale: {what} changed since {who} approved it at {when}; {again}", record
        )
    return ApprovalStatus("approved", f"approved by {who} at {when}", record)

