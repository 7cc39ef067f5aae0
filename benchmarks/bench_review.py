"""review: review-table build time and peak memory, and bundle size, at 10k x 768 x 20 snapshots.

A bare synthetic run (``bench_analyze._make_run``: clustered embeddings, random probs) with
32x32 noise PNGs (CIFAR-sized images), analysed once. Figures:

* ``build_table`` seconds and peak RSS, each in a fresh process, without and with
  ``embeddings=True``; the baseline is ``load_analysis`` alone, the floor any table build
  pays (it hashes every embedding file); Spotlight's own copy when serving is not included;
* the size of ``write_bundle``'s zip for the run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_analyze import DIM, _make_run

SNAPSHOTS = 20


# One measurement in a fresh process: seconds and peak RSS (MiB) of one call, after the
# imports every build pays (pandas, pyarrow, cleanlab), which are reported as the floor.
_CHILD = """
import sys, time
import pyarrow.parquet, cleanlab.filter, cleanlab.rank

def hwm():  # peak RSS of this process (VmHWM resets at exec; ru_maxrss is inherited)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

from spotreview.analysis.store import load_analysis
from spotreview.reviewing.table import build_table
run, mode = sys.argv[1], sys.argv[2]
floor = hwm()
t = time.perf_counter()
if mode == "load":
    load_analysis(run)
else:
    build_table(run, embeddings=mode == "embeddings")
print(time.perf_counter() - t, hwm(), floor)
"""


def _measure(run, mode: str) -> tuple[float, float, float]:
    """(seconds, peak RSS MiB, RSS MiB after imports) of load/plain/embeddings in a fresh process."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(run.root), mode], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def run(quick: bool) -> list[dict]:
    from PIL import Image

    from spotreview.analysis.analyze import analyze
    from spotreview.reviewing.bundle import write_bundle
    from spotreview.rundir.atomic import write_json
    from spotreview.rundir.evalset import read_eval

    n = 1000 if quick else 10_000
    size = f"{n}x{DIM}x{SNAPSHOTS}"
    row = dict(benchmark="review")
    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = _make_run(Path(tmp) / "run", n, SNAPSHOTS)
        write_json(
            run.manifest, {"model": "synthetic", "dataset": "synthetic", "class_names": [f"c{k}" for k in range(10)]}
        )
        run.images_dir.mkdir()
        rng = np.random.default_rng(0)
        for i in read_eval(run)["id"]:
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(run.image_path(i))
        analyze(run, quiet=True)
        base_s, base_mb, floor = _measure(run, "load")
        plain_s, plain_mb, _ = _measure(run, "plain")
        emb_s, emb_mb, _ = _measure(run, "embeddings")
        bundle = Path(tmp) / "review.zip"
        t = time.perf_counter()
        write_bundle(run, bundle)
        bundle_s = time.perf_counter() - t
        mb = bundle.stat().st_size / 1e6
        images_mb = sum(p.stat().st_size for p in run.images_dir.iterdir()) / 1e6
    return [
        dict(
            row,
            measure=f"build_table s {size}",
            value=plain_s,
            unit="s",
            baseline=base_s,
            ratio=plain_s / base_s,
            note="baseline: load_analysis alone (hashes the embeddings)",
        ),
        dict(
            row,
            measure=f"build_table peak RSS MiB {size}",
            value=plain_mb,
            unit="MiB",
            baseline=base_mb,
            ratio=plain_mb / base_mb,
            note=f"baseline: load_analysis alone; {floor:.0f} MiB after imports",
        ),
        dict(
            row,
            measure=f"build_table --embeddings s {size}",
            value=emb_s,
            unit="s",
            baseline=plain_s,
            ratio=emb_s / plain_s,
        ),
        dict(
            row,
            measure=f"build_table --embeddings peak RSS MiB {size}",
            value=emb_mb,
            unit="MiB",
            baseline=plain_mb,
            ratio=emb_mb / plain_mb,
            note=f"+ {n}x{DIM} float32 = {n * DIM * 4 / 2**20:.0f} MiB",
        ),
        dict(
            row,
            measure=f"bundle size, {n} 32x32 PNGs",
            value=mb,
            unit="MB",
            baseline=images_mb,
            ratio=mb / images_mb,
            note=f"baseline: the PNGs alone; written in {bundle_s:.1f} s",
        ),
    ]
