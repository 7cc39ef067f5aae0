"""process: what the CLI's two process-wide settings (``spotreview.util.process``) change here.

* ``keep_freed_memory`` (glibc ``mallopt``): minor page faults while a 126 MB block is freed
  and allocated again, ten times, with and without it. Without it glibc serves every block
  over 32 MB by a fresh mapping whose pages the kernel zeroes on first touch.
* ``idle_blas_threads_sleep`` (``OPENBLAS_THREAD_TIMEOUT=4``): CPU time that numpy's idle
  OpenBLAS workers spend spinning while the main thread sleeps after a GEMM.

Both are properties of the machine (glibc, transparent huge pages, OpenBLAS and its thread
count), so they are measured here rather than asserted in the tests. Each runs in a fresh
Python process, since both settings act only before the memory or the library is first used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAULTS = """
import resource, sys, torch
from spotreview.util.process import keep_freed_memory
kept = sys.argv[1] == "keep" and keep_freed_memory()
x = torch.randn(512, 768)
for k in range(30):
    if k == 20:  # glibc settles on reusing the block after some rounds
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x.repeat(20, 4)  # 126 MB
    del y
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

SPIN = """
import sys, time
from spotreview.util.process import idle_blas_threads_sleep
set_here = sys.argv[1] == "sleep" and idle_blas_threads_sleep()
import numpy as np
from threadpoolctl import threadpool_info
blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
openblas_threads = max([p["num_threads"] for p in blas if p["internal_api"] == "openblas"], default=0)
x = np.random.default_rng(0).random((4000, 768), dtype=np.float32)
idle = 0.0
for _ in range(5):
    x.T @ x  # OpenBLAS on all cores; its workers then wait for more
    cpu = time.process_time()
    time.sleep(0.3)  # this thread sleeps: CPU time now is spent by idle workers
    idle += time.process_time() - cpu
print(set_here, idle, openblas_threads)
"""


def _python(code: str, arg: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code, arg], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.split()


def run(quick: bool = False) -> list[dict]:
    rows = []
    if sys.platform.startswith("linux"):
        faults = {}
        for way in ("default", "keep"):
            kept, count = _python(FAULTS, way)
            faults[way] = int(count)
        rows.append(
            dict(
                benchmark="process",
                measure="minor page faults, 10 x a freed 126 MB block, keep_freed_memory",
                value=faults["keep"],
                unit="faults",
                baseline=faults["default"],
                ratio=faults["keep"] / max(faults["default"], 1),
                note=f"keep_freed_memory took effect: {kept}; baseline: glibc's default thresholds",
            )
        )
    idle = {}
    for way in ("default", "sleep"):
        set_here, seconds, threads = _python(SPIN, way)
        idle[way] = float(seconds)
    rows.append(
        dict(
            benchmark="process",
            measure="CPU s of idle OpenBLAS workers in 5 x 0.3 s after a GEMM, idle_blas_threads_sleep",
            value=idle["sleep"],
            unit="s",
            baseline=idle["default"],
            ratio=idle["sleep"] / idle["default"] if idle["default"] else None,
            note=f"{threads} OpenBLAS threads; setting took effect: {set_here}; baseline: OpenBLAS's default timeout",
        )
    )
    return rows
