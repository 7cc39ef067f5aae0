"""Process lifetime: child processes (render workers, ffmpeg, the Spotlight server) die
with their parent, and SIGTERM unwinds the CLI so cleanup code runs.

A ``kill -9`` of ``spotreview`` runs no Python code, so no ``finally`` can stop its
children; on Linux the kernel can (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in the child).
Elsewhere these are no-ops and children are stopped by the usual ``finally`` blocks only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Iterator

_PR_SET_PDEATHSIG = 1


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent: int | None = None) -> None:
    """In a child process: ask the kernel to SIGKILL it when its parent dies.

    ``parent``: the parent's PID as seen before the fork; if it is already gone (it died
    between fork and this call), exit now.
    """
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like an error (``SystemExit(143)``) in this process, so ``finally``
    blocks and context managers run: temporary files are removed, render workers and the
    Spotlight server stopped. (The default action ends the process without any of that.)"""

    def unwind(signum, frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)


@contextlib.contextmanager
def popen_dying_with_parent(module) -> Iterator[None]:
    """While active, ``module.subprocess.Popen`` (a library's own reference to
    ``subprocess``) starts children that die with this process.

    Only ``module``'s view of ``subprocess`` changes, not the global module. The kernel
    sends the signal when the *thread* that started the child ends, so use it from the
    main thread (as ``review`` does).
    """
    import subprocess
    import types

    prctl = _prctl()
    if prctl is None:
        yield
        return
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no imports, no locks
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    def popen(*args, **kwargs):
        kwargs.setdefault("preexec_fn", preexec)
        return subprocess.Popen(*args, **kwargs)

    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess) if not k.startswith("__")})
    shim.Popen = popen
    original = module.subprocess
    module.subprocess = shim
    try:
        yield
    finally:
        module.subprocess = original
