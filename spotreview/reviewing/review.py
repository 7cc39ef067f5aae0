"""Review in Renumics Spotlight: serve the review table with a layout, refresh it on changes.

``review(run)`` serves the review table (``table.build_table``) in Spotlight with a layout,
re-serves it whenever ``exclusions.json`` or the analysis changes, and runs until Ctrl-C
or a timeout. ``start_review`` returns the running :class:`ReviewSession` without blocking.
Messages (the URL, refreshes) are logged at INFO on the ``spotreview`` logger, which the
CLI shows. The server is told what it serves (:mod:`spotreview.reviewing.served`), so that
spotreview's Spotlight plugin can exclude and approve from the page.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spotreview.defaults import HOST, REVIEW_POLL
from spotreview.errors import ReviewError, SpotreviewError
from spotreview.reviewing.compare import is_comparison
from spotreview.reviewing.compare_review import comparison_layout
from spotreview.reviewing.follow import wait_for_snapshots
from spotreview.reviewing.layouts import check_layout_columns, default_layout, import_spotlight, load_layout
from spotreview.reviewing.served import analytics_choice as _analytics_choice
from spotreview.reviewing.served import served_record, serving
from spotreview.reviewing.sources import review_source, spotlight_dtypes, spotlight_issues
from spotreview.rundir.run import Run
from spotreview.util.process import popen_dying_with_parent

logger = logging.getLogger(__name__)

Ended = Literal["timeout", "interrupted", "stopped"]


@dataclass(frozen=True)
class ReviewResult:
    """How a :func:`review` ended."""

    url: str  # where Spotlight served the review
    ended: Ended  # timeout, interrupted (Ctrl-C) or stopped (``ReviewSession.stop``)
    refreshes: int  # times the table was re-served after its inputs changed
    layout: str | None  # the layout file given, None for the default
    bundle: Path | None  # the bundle reviewed, None for a run directory
    decisions: Path | None  # the bundle's decisions file, where exclusions made on it go
    training: str | None = None  # follow: how training stood at the end (training, finished, stopped, unknown)


class ReviewSession:
    """A running Spotlight server on a run's (or a bundle's) review table.

    ``refresh()`` re-serves the table when its source's watched files (``exclusions.json``
    and the analysis of a run, the decisions file of a bundle) changed; ``wait()`` polls for
    that until a timeout, ``stop()`` or Ctrl-C; ``close()`` stops the server. Use
    ``start_review`` to make one; it is also a context manager.
    """

    def __init__(self, source, viewer, layout, quiet: bool, seen: tuple | None = None):
        """``seen``: the watched files' signature from before the served table was built (a
        change while Spotlight started is then refreshed on the first check); None: now."""
        self.source = source
        self.run = getattr(source, "run", None)
        self.viewer = viewer
        self.layout = layout
        self.refreshes = 0
        self._quiet = quiet
        self._stop = threading.Event()
        self._interrupted = False
        self._seen = self._signature() if seen is None else seen

    @property
    def url(self) -> str:
        return self.viewer.url

    def _signature(self) -> tuple:
        return self.signature_of(self.source)

    @staticmethod
    def signature_of(source) -> tuple:
        """(inode, mtime, size) of every file ``source`` watches (None where missing)."""
        sig = []
        for f in source.watched:
            try:
                st = f.stat()
                # the inode too: an atomic rewrite of the same size within one mtime tick
                # (training.json going from "training" to "finished") is a new file
                sig.append((st.st_ino, st.st_mtime_ns, st.st_size))
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
        try:
            df = self.source.table()
        except SpotreviewError as e:
            if not self._quiet:
                logger.info("review table not refreshed: %s", e)
            return False
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Spotlight prints its URL again
                # No layout here: passing one would reset every open browser's layout.
                self.viewer.show(
                    df,
                    dtype=spotlight_dtypes(df),
                    issues=spotlight_issues(df),
                    analyze=False,
                    no_browser=True,
                    wait=False,
                )
        except Exception as e:  # Spotlight closes its server when an update fails
            raise ReviewError(
                f"Spotlight could not show the refreshed table ({type(e).__name__}: {e}); "
                f"start the review again with `spotreview review {self.source.name}`"
            ) from e
        self._seen = sig
        self.refreshes += 1
        if not self._quiet:
            n = int(df["exclude"].sum())
            logger.info("review table refreshed (%d excluded)", n)
        return True

    def wait(self, timeout: float | None = None, *, poll: float = REVIEW_POLL) -> Ended:
        """Refresh on changes every ``poll`` seconds until ``timeout`` seconds pass
        (``"timeout"``), ``stop()`` or ``interrupt()`` is called (``"stopped"``, ``"interrupted"``).
        Ctrl-C propagates unless :func:`review` turned it into ``interrupt()``."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return "timeout"
            if self._stop.wait(poll if left is None else min(poll, left)):
                return "interrupted" if self._interrupted else "stopped"
            self.refresh()

    def stop(self) -> None:
        self._stop.set()

    def interrupt(self) -> None:
        """Stop as Ctrl-C does: ``wait()`` returns "interrupted"."""
        self._interrupted = True
        self._stop.set()

    def close(self) -> None:
        self.stop()
        self.viewer.close()

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_review(
    run,
    *,
    layout: str | os.PathLike | None = None,
    host: str = HOST,
    port: int | None = None,
    open_browser: bool = True,
    analytics: bool = False,
    insecure: bool = False,
    quiet: bool = False,
    outlier_threshold: int | None = None,
    embeddings: bool = False,
    image_set: str | None = None,
    follow: bool = False,
    compare=None,
) -> ReviewSession:
    """Build the review table and serve it in Spotlight without blocking.

    ``run``: a run directory, or a review bundle (``spotreview bundle``, a ``.zip``).
    ``layout``: a layout file (validated, and checked against the table's columns), or
    None for the bundle's layout or ``default_layout()``. ``outlier_threshold``,
    ``embeddings``: see ``table.build_table`` (runs only). ``image_set``: ``"train"`` serves
    the run's recorded training images (None: the set ``run`` views, the evaluation set for a
    path). ``follow``: the run is still being written; each new snapshot is analysed and the
    table re-served (the run must have a snapshot already: :func:`review` waits for one).
    ``compare``: another run of the same evaluation set, served side by side with ``run``
    (``reviewing.compare.comparison_table``, refused with one line for another set). ``port``:
    None picks a free one. ``insecure`` lets Spotlight serve a non-local ``host`` without
    TLS (trusted networks only). Returns a running ``ReviewSession``; close it when done.
    """
    source = review_source(
        run,
        outlier_threshold=outlier_threshold,
        embeddings=embeddings,
        image_set=image_set,
        follow=follow,
        quiet=quiet,
        compare=compare,
    )
    # the files' state before the table is read: what changes from here on is refreshed
    seen = ReviewSession.signature_of(source)
    df = source.table()  # first: a missing analysis is the likeliest error, and cheap
    if layout is not None:
        parsed = load_layout(layout)
        check_layout_columns(parsed, df.columns, layout)
    elif source.default_layout is not None:
        parsed = load_layout(source.default_layout)
    elif is_comparison(df):
        parsed = comparison_layout(df.columns, df.attrs["comparison"])
    else:
        parsed = default_layout(df.columns)
    spotlight = import_spotlight()
    from renumics.spotlight import server as spotlight_server
    from renumics.spotlight.server import MissingTLSCertificate, MissingTLSKey

    viewer = spotlight.Viewer(host=host, port="auto" if port is None else port, no_ssl=insecure)
    try:
        # The server is a child process: it must not outlive a killed `review`.
        with (
            contextlib.redirect_stdout(io.StringIO()),
            popen_dying_with_parent(spotlight_server),
            _analytics_choice(analytics),
            serving(served_record(source, layout=layout, host=host, insecure=insecure)),  # for the plugin
        ):
            viewer.show(
                df,
                layout=parsed,
                dtype=spotlight_dtypes(df),
                issues=spotlight_issues(df),
                analyze=False,  # the issues are ours; Spotlight's analyzers would run cleanlab again
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
            ) from e
        raise ReviewError(
            f"cannot serve Spotlight on {host}:{port} ({e.strerror or e}); try another --host/--port"
        ) from e
    except (MissingTLSCertificate, MissingTLSKey) as e:
        raise ReviewError(
            f"Spotlight refuses to serve on {host} without TLS; use --host 127.0.0.1 "
            f"(e.g. behind an SSH tunnel), or --insecure on a trusted network"
        ) from e
    return ReviewSession(source, viewer, layout, quiet, seen=seen)


@contextlib.contextmanager
def _ctrl_c_interrupts(session: ReviewSession):
    """While active, Ctrl-C calls ``session.interrupt()`` instead of raising KeyboardInterrupt
    wherever the main thread happens to be: raised there, it can be lost (CPython swallows it
    in the after-fork callbacks of a child process being started), and the review would run
    on to its timeout. A second Ctrl-C raises as usual. Only in the main thread (the only
    one that may set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    previous = signal.default_int_handler if previous is None else previous

    def interrupt(signum, frame) -> None:
        signal.signal(signal.SIGINT, previous)
        session.interrupt()

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def review(
    run,
    *,
    layout: str | os.PathLike | None = None,
    host: str = HOST,
    port: int | None = None,
    open_browser: bool = True,
    timeout: float | None = None,
    analytics: bool = False,
    insecure: bool = False,
    poll: float = REVIEW_POLL,
    quiet: bool = False,
    outlier_threshold: int | None = None,
    embeddings: bool = False,
    image_set: str | None = None,
    follow: bool = False,
    compare=None,
) -> ReviewResult:
    """Serve ``run``'s review table in Spotlight until Ctrl-C or ``timeout`` seconds
    (``image_set="train"``: the recorded training images; ``compare``: another run, side by
    side; see :func:`start_review`).
    ``follow``: review a run while it trains, from its first snapshot on (waited for): each
    new snapshot is analysed and shown; the result's ``training`` says how training stood at
    the end.

    Logs the URL (unless ``quiet``); re-serves the table when ``exclusions.json`` or the
    analysis changes (checked every ``poll`` seconds). Returns how the review ended.
    """
    started = time.monotonic()
    if follow and not _wait_for_first_snapshot(run, image_set, timeout, poll, quiet):
        return ReviewResult(url="", ended="timeout", refreshes=0, layout=None, bundle=None, decisions=None)
    if timeout is not None:
        timeout = max(timeout - (time.monotonic() - started), 0.001)
    session = start_review(
        run,
        follow=follow,
        layout=layout,
        host=host,
        port=port,
        open_browser=open_browser,
        analytics=analytics,
        insecure=insecure,
        quiet=quiet,
        outlier_threshold=outlier_threshold,
        embeddings=embeddings,
        image_set=image_set,
        compare=compare,
    )
    url = session.url
    with _ctrl_c_interrupts(session):  # from here on, Ctrl-C ends the review cleanly
        try:
            if not quiet:
                until = "Ctrl-C" if timeout is None else f"Ctrl-C or {timeout:g} s"
                logger.info("Spotlight review of %s: %s  (stops on %s)", session.source.name, url, until)
                logger.info(
                    "exclude images in the page (the inspector's exclude lens) or with "
                    "`spotreview exclude %s ID... --reason TEXT`; this review refreshes to show them",
                    session.source.name,
                )
            ended = session.wait(timeout, poll=poll)
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
            ended = "interrupted"
        finally:
            session.close()
    bundle = getattr(session.source, "decisions", None)
    return ReviewResult(
        url=url,
        ended=ended,
        refreshes=session.refreshes,
        layout=None if layout is None else str(layout),
        bundle=None if bundle is None else session.source.name,
        decisions=bundle,
        training=session.source.follower.state if follow else None,
    )


def _wait_for_first_snapshot(run, image_set, timeout, poll: float, quiet: bool) -> bool:
    """``review(follow=True)`` before Spotlight starts: wait for the run's first snapshot
    (False on timeout); Ctrl-C while waiting raises KeyboardInterrupt as usual."""
    if Path(run).is_file():
        return True  # a bundle: start_review says it cannot be followed
    view = Run(run, image_set).require()
    if view.snapshots() and view.eval_csv.is_file():
        return True
    if not quiet:
        logger.info("waiting for the first snapshot of %s", view.label)
    return wait_for_snapshots(view, timeout=timeout, poll=poll, stop=threading.Event())
