"""What the review page may do, checked: its state, excluding images, approving the run.

:class:`Page` holds the :class:`~spotreview.reviewing.served.Served` record of the server's
review and answers the routes with plain dicts (JSON). Every change goes through the same
library calls as the terminal commands (``spotreview.reviewing.exclusions.exclude``, with the
run lock and atomic write of ``exclusions.json`` or the bundle's decisions file;
``spotreview.reviewing.approval.approve``), after the request is checked: ids of the served
set only, reasons and names as one line of bounded text, anything else one ``ReviewError``
line and nothing written.
"""

from __future__ import annotations

import threading
import unicodedata

from spotreview.errors import ReviewError
from spotreview.reviewing.served import Served

MAX_REASON = 500  # characters of an exclusion's reason
MAX_NAME = 100  # characters of an approver's name
MAX_ID = 512  # characters of one image id (longer ones are no id of a run)


class WritesRefused(ReviewError):
    """The review serves a non-local host without --insecure: its page may not write."""


def _json_type(value) -> str:
    names = {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def one_line(value, what: str, limit: int, *, empty: bool) -> str:
    """``value`` as one line of text (stripped) of at most ``limit`` characters; a
    ``ReviewError`` for anything else (not text, too long, control characters, empty when
    ``empty`` is false)."""
    if not isinstance(value, str):
        raise ReviewError(f"{what} must be text, got {_json_type(value)}")
    if len(value) > limit:
        raise ReviewError(f"{what} has {len(value):,} characters; at most {limit} are kept")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ReviewError(f"{what} has control characters (line breaks, tabs); write it on one line")
    value = value.strip()
    if not value and not empty:
        raise ReviewError(f"{what} is empty")
    return value


def _ids(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ReviewError(f"ids must be a non-empty list of image ids, got {_json_type(value)}")
    for i in value:
        if not isinstance(i, str) or not i or len(i) > MAX_ID:
            shown = repr(i) if not isinstance(i, str) else f"{len(i):,} characters"
            raise ReviewError(f"ids must be image ids (text of 1 to {MAX_ID} characters), got {shown}")
    return list(dict.fromkeys(value))


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without USER): the reviewer types one
        return ""


def _fields(body, allowed: set[str]) -> dict:
    if not isinstance(body, dict):
        raise ReviewError(f"the request must be a JSON object, got {_json_type(body)}")
    extra = sorted(set(body) - allowed)
    if extra:
        raise ReviewError(f"unknown field(s) {', '.join(map(repr, extra))}; expected {', '.join(sorted(allowed))}")
    return body


class Page:
    """The actions of one review's page. Writes are serialised within the server (the run
    lock also covers the terminal; a bundle's decisions file has no lock of its own)."""

    def __init__(self, served: Served):
        self.served = served
        self._write = threading.Lock()

    # --- reading --------------------------------------------------------------------------
    def state(self) -> dict:
        """What the app bar shows: the run's snapshots, training, approval and exclusions (or
        the bundle's decisions), and whether the page may write."""
        s = self.served
        out = {
            "active": True,
            "writes": s.writes,
            "read_only": s.read_only,
            "max_reason": MAX_REASON,
            "max_name": MAX_NAME,
        }
        if s.bundle:
            from spotreview.reviewing.bundle import decisions_path, read_decisions

            decided = read_decisions(s.bundle)
            return out | {
                "kind": "bundle",
                "name": s.bundle,
                "exclusions": len(decided),
                "decisions": str(decisions_path(s.bundle)),
            }
        from spotreview.reviewing.status import run_status
        from spotreview.rundir.traininglog import training_state

        status = run_status(s.target())
        training = training_state(status.run)  # training, finished, stopped (its writer is gone)
        if training == "unknown":  # no training.json: the manifest's word
            training = "training" if status.unfinished else "finished"
        return out | {
            "kind": "run",
            "name": status.run.label,
            "snapshots": len(status.snapshots),
            "steps": status.snapshots[:1] + status.snapshots[-1:],
            "training": training,
            "approval": status.approval.state,
            "approval_message": status.approval.message,
            "exclusions": len(status.exclusions),
            "analysis_error": status.analysis_error,
            "user": _login_name(),  # the name the dialog suggests, as `spotreview approve` records
        }

    # --- writing --------------------------------------------------------------------------
    def _writable(self) -> None:
        if not self.served.writes:
            raise WritesRefused(f"this page is read-only: {self.served.read_only}")

    def exclude(self, body) -> dict:
        """Exclude the images ``body["ids"]`` with ``body["reason"]`` (``"exclude": true``,
        the default) or take them out of the exclusions (``false``). Returns the ids' state
        now and the number of exclusions."""
        from spotreview.reviewing.exclusions import exclude

        body = _fields(body, {"ids", "exclude", "reason"})
        ids = _ids(body.get("ids"))
        excluding = body.get("exclude", True)
        if not isinstance(excluding, bool):
            raise ReviewError(f"exclude must be true or false, got {_json_type(excluding)}")
        reason = one_line(body.get("reason", ""), "the reason", MAX_REASON, empty=True)
        self._writable()
        with self._write:
            if excluding:
                done = exclude(self.served.target(), ids, reason=reason)
            else:
                done = exclude(self.served.target(), ids, clear=True)
        return {
            "exclusions": len(done.exclusions),
            "excluded": {i: done.exclusions[i] for i in ids if i in done.exclusions},
            "kept": [i for i in ids if i not in done.exclusions],
            "where": str(done.where),
        }

    def approve(self, body) -> dict:
        """Record that ``body["by"]`` approved the run for export, as ``spotreview approve``
        does, with the layout the review serves. Not for a bundle."""
        from spotreview.reviewing.approval import approve

        body = _fields(body, {"by"})
        by = one_line(body.get("by"), "the approver's name", MAX_NAME, empty=False)
        if self.served.bundle:
            raise ReviewError(
                "this review serves a bundle; the run it was made from is approved with `spotreview approve RUN`"
            )
        self._writable()
        with self._write:
            record = approve(self.served.target(), by=by, layout=self.served.layout)
        return {"by": record.by, "at": record.at, "digest": record.digest, "snapshots": record.snapshots}
