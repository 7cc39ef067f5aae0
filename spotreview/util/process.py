"""This process and its children: children (render workers, ffmpeg, the Spotlight server) die
with their parent, SIGTERM unwinds the CLI so cleanup code runs, and two process-wide
settings the CLI makes first thing (freed memory kept for reuse, idle BLAS threads asleep).

A ``kill -9`` of ``spotreview`` runs no Python code, so no ``finally`` can stop its
children; on Linux the kernel can (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in the child).
Elsewhere these are no-ops and children are stopped by the usual ``finally`` blocks only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

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


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Ask glibc (``mallopt``) to keep freed blocks of up to ``limit`` bytes in the process for
    reuse instead of handing each back to the kernel.

    By default every block over 32 MB is a mapping of its own, so each batch's activations
    arrive as fresh pages the kernel must zero (benchmarks/RESULTS.md). It is process-wide, so
    the ``spotreview`` CLI calls it (its process is its own); a Python user may call it too.
    Returns False where it did nothing (no glibc)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, limit)) and bool(mallopt(m_trim_threshold, limit))


def idle_blas_threads_sleep() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` to its shortest (2**4 cycles) unless the user set it.

    OpenBLAS keeps idle workers spinning after each call; on few cores they take the cores from
    torch's next GEMM, which analyze alternates with numpy's. OpenBLAS reads the setting once,
    when it is loaded, so this works only before numpy is imported; the ``spotreview`` CLI calls
    it first thing. Returns whether the setting can take effect."""
    if "numpy" in sys.modules:
        return False
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    return True
