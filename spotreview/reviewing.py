"""Review in Renumics Spotlight, reviewer exclusions, shareable layouts and the approval record.

* ``review(run)`` serves the review table (``table.build_table``) in Spotlight with a layout,
  re-serves it whenever ``exclusions.json`` or the analysis changes, and runs until Ctrl-C
  or a timeout. Spotlight 1.8 serves tables read-only, so exclusions are made with
  ``exclude(run, ids)`` (``spotreview exclude``) from ids copied out of Spotlight.
* ``default_layout()`` is the layout built in code; ``layouts/review.json`` in the repository
  is ``save_layout`` of it. ``load_layout(path)`` validates any layout file, including
  those saved from Spotlight's UI ("Save Layout").
* ``approve(run)`` writes ``approval.json``: who, when, and the sha256 digests of exactly
  what was approved (stored analysis files, exclusions, layout). ``approval_status(run)``
  recomputes them and says which part changed since.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import ReviewError, SpotreviewError
from .rundir import Run, sha256_bytes, write_json, write_text

# Names of the widgets in the default layout; the browser test finds the plots by them.
FIRST_PLOT = "first snapshot (aligned PCA)"
LAST_PLOT = "last snapshot (aligned PCA)"


# --- Spotlight import ------------------------------------------------------------------


def _spotlight(analytics: bool = False):
    """Import ``renumics.spotlight`` with its analytics off unless ``analytics`` is true.

    Spotlight reads ``SPOTLIGHT_OPT_OUT`` / ``SPOTLIGHT_OPT_IN`` into a settings object when
    ``renumics.spotlight.settings`` is first imported, and its server is a subprocess that
    imports it afresh with a copy of ``os.environ``; so the environment is set before the
    import (for the subprocess) and the already-imported settings object is updated too.
    """
    os.environ["SPOTLIGHT_OPT_OUT"] = "false" if analytics else "true"
    if not analytics:
        os.environ["SPOTLIGHT_OPT_IN"] = "false"
    from loguru import logger

    # Spotlight logs optional-analyzer warnings (e.g. cleanvision missing) at import time.
    logger.disable("renumics")
    from renumics import spotlight
    from renumics.spotlight.settings import settings

    settings.opt_out = not analytics
    if not analytics:
        settings.opt_in = False
    return spotlight


# --- layouts ---------------------------------------------------------------------------


def default_layout():
    """The default review layout (a ``renumics.spotlight.layout.nodes.Layout``).

    Top: the first and the last snapshot as scatterplots of the aligned PCA columns,
    coloured by label (not Spotlight's similarity map, whose PCA would re-project and undo
    the alignment), and an inspector with the image. Bottom: the table, most atypical
    images at the last snapshot first, and histograms of the outlier scores.
    """
    _spotlight()
    from renumics.spotlight import layout as L
    from renumics.spotlight.layout import lenses

    def lens(make, column):
        view = make(column, name=column)
        view.id = f"lens-{column}"  # a fixed key (default: a random uuid) keeps the JSON stable
        return view

    inspector = L.inspector(
        "image",
        [
            lens(lenses.image, "image"),
            *(
                lens(lenses.scalar, c)
                for c in (
                    "id",
                    "label",
                    "prediction_first",
                    "prediction_last",
                    "outlier_rank_first",
                    "outlier_rank_last",
                    "exclude",
                    "exclude_reason",
                )
            ),
        ],
        num_columns=2,
    )
    plots = [
        L.scatterplot(name, f"pca_{w}_x", f"pca_{w}_y", color_by_column="label")
        for name, w in ((FIRST_PLOT, "first"), (LAST_PLOT, "last"))
    ]
    table = L.table(
        "review table", sort_by_columns=[("outlier_rank_last", "ascending")]
    )
    histograms = [
        L.histogram(f"outlier score, {w} snapshot", f"outlier_score_{w}", "label")
        for w in ("last", "first")
    ]
    return L.layout(
        L.split(
            L.tab(plots[0], weight=36),
            L.tab(plots[1], weight=36),
            L.tab(inspector, weight=28),
            weight=55,
        ),
        L.split(L.tab(table, weight=65), L.tab(*histograms, weight=35), weight=45),
    )


def layout_json(layout) -> str:
    """A layout as the JSON text spotreview writes: by alias, as Spotlight's UI saves it."""
    return layout.model_dump_json(by_alias=True, indent=2) + "\n"


def save_layout(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the default layout as JSON to ``path`` (atomically) for a teammate to edit."""
    path = Path(path)
    if path.exists() and not force:
        raise ReviewError(f"{path} already exists; pass --force to overwrite it")
    if path.is_dir():
        raise ReviewError(f"{path} is a directory; give a file name such as {path / 'review.json'}")
    write_text(path, layout_json(default_layout()))
    return path


def _widgets(node) -> Iterable[Any]:
    for child in getattr(node, "children", []):
        if getattr(child, "kind", None) == "widget":
            yield child
        else:
            yield from _widgets(child)


def load_layout(path: str | os.PathLike):
    """Read and validate a Spotlight layout file (``spotreview layout save`` or the UI's
    "Save Layout"); raise a one-line ``ReviewError`` when it is missing, not JSON, not a
    layout, or names a widget type Spotlight does not have."""
    _spotlight()
    from pydantic import ValidationError
    from renumics.spotlight.layout.nodes import Layout
    from renumics.spotlight.layout.widgets import Widget

    path = Path(path)
    if not path.is_file():
        raise ReviewError(
            f"layout file {path} not found; write the default with `spotreview layout save {path}`"
        )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReviewError(f"layout file {path} is not valid JSON ({e})") from None
    try:
        layout = Layout.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ReviewError(
            f"layout file {path} is not a Spotlight layout: {where}: {first['msg']} "
            f"({e.error_count()} problem(s)); start from `spotreview layout save FILE`"
        ) from None
    # Spotlight's model accepts any widget type string and keeps it as the base class;
    # the UI would then show an empty tab, so unknown types are refused here.
    known = sorted(sub.model_fields["type"].default for sub in Widget.__subclasses__())
    unknown = sorted({w.type for w in _widgets(layout) if type(w) is Widget})
    if unknown:
        raise ReviewError(
            f"layout file {path} has unknown widget type(s) {', '.join(map(repr, unknown))}; "
            f"Spotlight knows {', '.join(known)}"
        )
    return layout


def _layout_bytes(layout_path: str | os.PathLike | None) -> bytes:
    if layout_path is None:
        # The default layout is code, so the spotreview version that builds it identifies it;
        # serialising it would import Spotlight (~7 s) in every `status` and `export`.
        from . import __version__

        return f"default layout of spotreview {__version__}".encode("utf-8")
    return Path(layout_path).read_bytes()


# --- exclusions ------------------------------------------------------------------------


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def exclude(
    run, ids: Iterable[str], *, reason: str | None = None, clear: bool = False
) -> dict[str, str]:
    """Mark evaluation images as excluded by the reviewer, in ``exclusions.json``.

    ``ids`` must be ids of the evaluation set (``eval.csv``). With ``clear``, remove the
    given ids from the exclusions instead, or all exclusions when ``ids`` is empty.
    Returns the exclusions now on disk, ``{id: reason}`` (reason ``""`` when none given).
    """
    run = Run(run).require()
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids and not clear:
        raise ReviewError(
            "give at least one image id to exclude (ids are in the review table's `id` column), "
            "or --clear to remove all exclusions"
        )
    known = set(run.read_eval()["id"])
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ReviewError(
            f"{len(unknown)} unknown image id(s) for {run.root}: {_few(unknown)}; "
            f"use ids from the review table's `id` column (or {run.eval_csv})"
        )
    current = run.read_exclusions()
    if clear:
        current = {} if not ids else {k: v for k, v in current.items() if k not in ids}
    else:
        current.update({i: reason or "" for i in ids})
    write_json(run.exclusions, current)
    return current


# --- approval --------------------------------------------------------------------------


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


PARTS = ("analysis", "exclusions", "layout")


def approval_parts(run, *, layout: str | os.PathLike | None = None) -> dict:
    """What ``approve`` would record now: ``{"parts": {analysis, exclusions, layout}
    (sha256 hex each), "digest": sha256 over the parts, "layout": absolute path or None,
    "exclusions": {id: reason}, "steps": [first, last], "snapshots": count}``.

    The analysis must be present and up to date (``load_analysis``); a given layout file
    must be valid (``load_analysis`` / ``load_layout`` errors otherwise).
    """
    from .analysis import analysis_digest, load_analysis

    run = Run(run).require()
    a = load_analysis(run)
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


def os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container without USER): still record something
        return "unknown"


def approve(run, *, by: str | None = None, layout: str | os.PathLike | None = None) -> dict:
    """Record that ``by`` (default: the OS user) approved ``run`` for export, now.

    Writes and returns the ``approval.json`` record: ``by``, ``at`` (UTC, ISO 8601),
    ``digest`` and ``parts`` (see ``approval_parts``), ``layout`` (file or None for the
    default layout), ``exclusions`` and the snapshot ``steps`` that were approved.
    """
    from . import __version__

    run = Run(run)
    record = approval_parts(run, layout=layout)
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


def approval_status(run) -> ApprovalStatus:
    """Whether ``run`` is approved for export, and if not, why (one line)."""
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
        now = approval_parts(run, layout=layout)["parts"]
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


# --- status ----------------------------------------------------------------------------


def run_status(run) -> dict:
    """Where ``run`` stands: snapshots, first/last metrics, exclusions, approval.

    Returns ``{"run", "snapshots": [steps], "analysis": {...} | None, "analysis_error":
    str | None, "exclusions": {id: reason}, "approval": ApprovalStatus}``; ``analysis`` has
    ``align`` and ``first``/``last`` dicts with ``step``, ``accuracy``, ``knn_accuracy``,
    ``disparity`` and ``top`` (ids of the most atypical images at that snapshot).
    """
    from .analysis import load_analysis

    run = Run(run).require()
    out: dict[str, Any] = {
        "run": str(run.root),
        "snapshots": run.snapshots(),
        "analysis": None,
        "analysis_error": None,
        "exclusions": run.read_exclusions(),
    }
    try:
        a = load_analysis(run)
    except SpotreviewError as e:
        out["analysis_error"] = str(e)
    else:

        def at(k: int) -> dict:
            return {
                "step": int(a.steps[k]),
                "accuracy": float(a.accuracy[k]),
                "knn_accuracy": float(a.knn_accuracy[k]),
                "disparity": float(a.disparity[k]),
                "top": [a.ids[i] for i in a.top(k % len(a.steps), 3)],
            }

        out["analysis"] = {"align": a.align, "first": at(0), "last": at(-1)}
    out["approval"] = approval_status(run)
    return out


def format_status(status: dict) -> str:
    """``run_status`` as lines for a terminal."""
    steps = status["snapshots"]
    lines = [f"run:         {status['run']}"]
    lines.append(
        f"snapshots:   {len(steps)} (steps {steps[0]} .. {steps[-1]})" if steps else "snapshots:   none"
    )
    a = status["analysis"]
    if a is None:
        lines.append(f"analysis:    {status['analysis_error']}")
    else:
        lines.append(f"analysis:    aligned to {a['align']}")
        for which in ("first", "last"):
            m = a[which]
            acc = "n/a" if m["accuracy"] != m["accuracy"] else f"{m['accuracy']:.3f}"
            lines.append(
                f"  {which:<5} step {m['step']:<6} accuracy {acc}  kNN accuracy "
                f"{m['knn_accuracy']:.3f}  disparity {m['disparity']:.4f}  "
                f"most atypical {', '.join(m['top'])}"
            )
    lines.append(f"exclusions:  {len(status['exclusions'])}")
    lines.append(f"approval:    {status['approval'].message}")
    return "\n".join(lines)


# --- Spotlight review ------------------------------------------------------------------


def _dtypes(df, spotlight) -> dict:
    from .table import CATEGORY_COLUMNS

    dtype = {"image": spotlight.Image}
    dtype.update({c: spotlight.Category for c in CATEGORY_COLUMNS if c in df.columns})
    return dtype


class ReviewSession:
    """A running Spotlight server on a run's review table.

    ``refresh()`` re-serves the table when ``exclusions.json`` or the stored analysis
    changed; ``wait()`` polls for that until a timeout, ``stop()`` or Ctrl-C; ``close()``
    stops the server. Use ``start_review`` to make one; it is also a context manager.
    """

    def __init__(self, run: Run, viewer, spotlight, layout, quiet: bool):
        self.run = run
        self.viewer = viewer
        self.layout = layout
        self.refreshes = 0
        self._spotlight = spotlight
        self._quiet = quiet
        self._stop = threading.Event()
        self._seen = self._signature()

    @property
    def url(self) -> str:
        return self.viewer.url

    def _signature(self) -> tuple:
        files = (
            self.run.exclusions,
            self.run.analysis_dir / "aligned.npz",
            self.run.analysis_dir / "summary.json",
        )
        sig = []
        for f in files:
            try:
                st = f.stat()
                sig.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-serve the table if its inputs changed (or ``force``); True if it did.

        A table that cannot be built right now (an analysis being rewritten) is retried at
        the next call rather than taking the server down.
        """
        sig = self._signature()
        if sig == self._seen and not force:
            return False
        from .table import build_table

        try:
            df = build_table(self.run)
        except SpotreviewError as e:
            if not self._quiet:
                print(f"review table not refreshed: {e}", flush=True)
            return False
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Spotlight prints its URL again
                # No layout here: passing one would reset every open browser's layout.
                self.viewer.show(
                    df, dtype=_dtypes(df, self._spotlight), no_browser=True, wait=False
                )
        except Exception as e:  # Spotlight closes its server when an update fails
            raise ReviewError(
                f"Spotlight could not show the refreshed table ({type(e).__name__}: {e}); "
                f"start the review again with `spotreview review {self.run.root}`"
            ) from None
        self._seen = sig
        self.refreshes += 1
        if not self._quiet:
            n = int(df["exclude"].sum())
            print(f"review table refreshed ({n} excluded)", flush=True)
        return True

    def wait(self, timeout: float | None = None, *, poll: float = 1.0) -> str:
        """Refresh on changes every ``poll`` seconds until ``timeout`` seconds pass
        (``"timeout"``) or ``stop()`` is called (``"stopped"``). Ctrl-C propagates."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return "timeout"
            if self._stop.wait(poll if left is None else min(poll, left)):
                return "stopped"
            self.refresh()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        self.viewer.close()

    def __enter__(self) -> "ReviewSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_review(
    run,
    *,
    layout: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    open_browser: bool = True,
    analytics: bool = False,
    insecure: bool = False,
    quiet: bool = False,
) -> ReviewSession:
    """Build the review table and serve it in Spotlight without blocking.

    ``layout``: a layout file (validated), or None for ``default_layout()``. ``port``:
    None picks a free one. ``insecure`` lets Spotlight serve a non-local ``host`` without
    TLS (trusted networks only). Returns a running ``ReviewSession``; close it when done.
    """
    from .table import build_table

    run = Run(run).require()
    df = build_table(run)  # first: a missing analysis is the likeliest error, and cheap
    parsed = load_layout(layout) if layout is not None else default_layout()
    spotlight = _spotlight(analytics)
    from renumics.spotlight.server import MissingTLSCertificate, MissingTLSKey

    viewer = spotlight.Viewer(host=host, port="auto" if port is None else port, no_ssl=insecure)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            viewer.show(
                df,
                layout=parsed,
                dtype=_dtypes(df, spotlight),
                no_browser=not open_browser,
                allow_filebrowsing=False,
                wait=False,
            )
    except OSError as e:
        viewer.close()
        if e.errno == errno.EADDRINUSE:
            raise ReviewError(
                f"port {port} on {host} is already in use; pick another with --port "
                f"(or leave --port out for a free one)"
            ) from None
        raise ReviewError(
            f"cannot serve Spotlight on {host}:{port} ({e.strerror or e}); "
            f"try another --host/--port"
        ) from None
    except (MissingTLSCertificate, MissingTLSKey):
        raise ReviewError(
            f"Spotlight refuses to serve on {host} without TLS; use --host 127.0.0.1 "
            f"(e.g. behind an SSH tunnel), or --insecure on a trusted network"
        ) from None
    return ReviewSession(run, viewer, spotlight, layout, quiet)


def review(
    run,
    *,
    layout: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    open_browser: bool = True,
    timeout: float | None = None,
    analytics: bool = False,
    insecure: bool = False,
    poll: float = 1.0,
    quiet: bool = False,
) -> dict:
    """Serve ``run``'s review table in Spotlight until Ctrl-C or ``timeout`` seconds.

    Prints the URL (unless ``quiet``); re-serves the table when ``exclusions.json`` or the
    analysis changes (checked every ``poll`` seconds). Returns ``{"url", "layout",
    "refreshes", "ended": "timeout" | "interrupted"}``.
    """
    session = start_review(
        run,
        layout=layout,
        host=host,
        port=port,
        open_browser=open_browser,
        analytics=analytics,
        insecure=insecure,
        quiet=quiet,
    )
    url = session.url
    try:  # from here on, Ctrl-C ends the review cleanly
        if not quiet:
            until = "Ctrl-C" if timeout is None else f"Ctrl-C or {timeout:g} s"
            print(f"Spotlight review of {session.run.root}: {url}  (stops on {until})", flush=True)
            print(
                f"exclude rows with `spotreview exclude {session.run.root} ID... --reason TEXT`; "
                f"this review refreshes to show them",
                flush=True,
            )
        ended = session.wait(timeout, poll=poll)
    except KeyboardInterrupt:
        ended = "interrupted"
    finally:
        session.close()
    return {
        "url": url,
        "layout": None if layout is None else str(layout),
        "refreshes": session.refreshes,
        "ended": ended,
    }
