"""Process threads: numpy's BLAS workers sleep as soon as they are idle, instead of spinning.

OpenBLAS (numpy's and scipy's BLAS) keeps its worker threads spinning for a while after each
call (2**28 cycles, ~0.1 s, by default), waiting for more work. analyze alternates numpy
GEMMs (the PCA) with torch GEMMs (the neighbour search), so on a machine with few cores those
spinning threads took the cores that torch's threads were given: a torch GEMM right after a
numpy one ran 1.5x slower (113 vs 75 ms, 4096 x 768 @ 768 x 10000 bf16 on 2 cores).
"""

from __future__ import annotations

import os
import sys


def idle_blas_threads_sleep() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` to its shortest (2**4 cycles) unless the user set it.
    OpenBLAS reads it once, when it is loaded, so this works only before numpy is imported;
    the ``spotreview`` CLI calls it first thing. Returns whether the setting can take effect."""
    if "numpy" in sys.modules:
        return False
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    return True
