"""Scale check: 100k x 768 x 3 snapshots analysed and exported (GIF and HTML) on one machine.

Each stage runs as its own ``spotreview`` process (start-up included) under a small wrapper
that reports the child's peak resident memory (``ru_maxrss``); the goal is that every stage
fits in 24 GB. Synthetic clustered embeddings from ``bench_analyze`` with no
image files (thumbnails are blank tiles; the frames and the page are otherwise complete).
``--n`` changes the size (default 100000; ``--quick``: 5000).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench_analyze import _make_run

ROOT = Path(__file__).resolve().parent.parent
PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)


def _stage(*args: str) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one ``spotreview`` command in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "spotreview", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"spotreview {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return wall, int(done.stdout.strip().splitlines()[-1]) / 2**20


def run(quick: bool = False, n: int | None = None) -> list[dict]:
    n = n or (5000 if quick else 100_000)
    snapshots = 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, _, _ = _make_run(Path(tmp) / "run", n, snapshots)
        stages = [
            ("analyze", ["analyze", str(run_dir.root), "-q"]),
            ("export GIF", ["export", str(run_dir.root), "--force", "-q", "--out", str(Path(tmp) / "a.gif")]),
            ("export HTML", ["export", str(run_dir.root), "--force", "-q", "--out", str(Path(tmp) / "a.html")]),
        ]
        for name, args in stages:
            wall, peak = _stage(*args)
            size = ""
            if name.startswith("export"):
                size = f"; file {(Path(tmp) / ('a.gif' if 'GIF' in name else 'a.html')).stat().st_size / 1e6:.1f} MB"
            rows.append(
                dict(
                    benchmark="scale",
                    measure=f"{name}, {n}x768x{snapshots} (s, whole process)",
                    value=wall,
                    unit="s",
                    note=f"peak RSS {peak:.2f} GiB{size}",
                )
            )
            rows.append(
                dict(
                    benchmark="scale",
                    measure=f"{name} peak RSS",
                    value=peak,
                    unit="GiB",
                    target="< 24 GiB",
                    met=peak < 24,
                )
            )
    return rows
