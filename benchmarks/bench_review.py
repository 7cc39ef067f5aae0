"""review: review-table build time and peak memory, and bundle size, at 10k x 768 x 20 snapshots.

A bare synthetic run (``bench_analyze._make_run``: clustered embeddings, random probs) with
32x32 noise PNGs (CIFAR-sized images), analysed once. Figures:

* ``build_table`` seconds and peak traced memory (``tracemalloc``: numpy and Python
  allocations), without and with ``embeddings=True``; the baseline is ``load_analysis``
  alone, the floor any table build pays (it hashes every embedding file);
* the size of ``write_bundle``'s zip for the run.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from .bench_analyze import DIM, _make_run

SNAPSHOTS = 20


def _measure(fn) -> tuple[float, float]:
    """(seconds, peak traced MiB) of one call."""
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return wall, peak


def run(quick: bool) -> list[dict]:
    from PIL import Image

    from spotreview.analysis import analyze
    from spotreview.analysis_store import load_analysis
    from spotreview.bundle import write_bundle
    from spotreview.rundir import write_json
    from spotreview.table import build_table

    n = 1000 if quick else 10_000
    size = f"{n}x{DIM}x{SNAPSHOTS}"
    row = dict(benchmark="review")
    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = _make_run(Path(tmp) / "run", n, SNAPSHOTS)
        write_json(run.manifest, {"model": "synthetic", "dataset": "synthetic",
                                  "class_names": [f"c{k}" for k in range(10)]})
        run.images_dir.mkdir()
        rng = np.random.default_rng(0)
        for i in run.read_eval()["id"]:
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(run.image_path(i))
        analyze(run, quiet=True)
        build_table(run, save=False)  # imports (pyarrow, cleanlab) are not part of the figures
        base_s, base_mb = _measure(lambda: load_analysis(run))
        plain_s, plain_mb = _measure(lambda: build_table(run))
        emb_s, emb_mb = _measure(lambda: build_table(run, embeddings=True))
        bundle = Path(tmp) / "review.zip"
        bundle_s, _ = _measure(lambda: write_bundle(run, bundle))
        mb = bundle.stat().st_size / 1e6
        images_mb = sum(p.stat().st_size for p in run.images_dir.iterdir()) / 1e6
    return [
        dict(row, measure=f"build_table s {size}", value=plain_s, unit="s", baseline=base_s,
             ratio=plain_s / base_s, note="baseline: load_analysis alone (hashes the embeddings)"),
        dict(row, measure=f"build_table peak MiB {size}", value=plain_mb, unit="MiB", baseline=base_mb,
             ratio=plain_mb / base_mb, note="tracemalloc peak"),
        dict(row, measure=f"build_table --embeddings s {size}", value=emb_s, unit="s", baseline=plain_s,
             ratio=emb_s / plain_s),
        dict(row, measure=f"build_table --embeddings peak MiB {size}", value=emb_mb, unit="MiB",
             baseline=plain_mb, ratio=emb_mb / plain_mb, note=f"+ {n}x{DIM} float32 = {n * DIM * 4 / 2**20:.0f} MiB"),
        dict(row, measure=f"bundle size, {n} 32x32 PNGs", value=mb, unit="MB", baseline=images_mb,
             ratio=mb / images_mb, note=f"baseline: the PNGs alone; written in {bundle_s:.1f} s"),
    ]
