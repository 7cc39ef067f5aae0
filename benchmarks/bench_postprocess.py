"""Post-processing benchmark: ``spotreview analyze`` + ``spotreview export`` (GIF) against the
notebook way, both as whole processes (start-up and imports count), at 10k x 768 x 6 snapshots.

The notebook way (what the seed article's code does, written plainly): per snapshot a new
``cleanlab.outlier.OutOfDistribution().fit_score(features=X)``, PCA to 2-D,
``scipy.spatial.procrustes`` chained to the previous frame, then one PNG per frame through a
new pyplot figure (scatter coloured by label and a title: less than spotreview draws), read
back and written as a GIF with imageio. spotreview's analysis is deleted before each of its
runs, so both compute everything. The two run in pairs, in alternating order (A B, B A, ...);
the figures are the medians over the pairs, and the note gives the range of the pairs' ratios:
on a shared VM the notebook way alone varies by a quarter from run to run
(benchmarks/RESULTS.md), so one pair proves little. Also: wall time of ``spotreview --help`` and of ``analyze`` on an
already-analysed run (the fixed costs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_analyze import NOTEBOOK_ANALYSIS, _make_run
from .paired import Paired, paired

ROOT = Path(__file__).resolve().parent.parent

# The notebook's analysis (bench_analyze.NOTEBOOK_ANALYSIS), then one pyplot PNG per frame.
NOTEBOOK = (
    NOTEBOOK_ANALYSIS
    + r"""
import sys, io
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import imageio.v2 as imageio

run, out = Path(sys.argv[1]), sys.argv[2]
labels = pd.read_csv(run / "eval.csv")["label"].to_numpy()
frames = []
for f, scores, xy in analysed(run):
    fig, ax = plt.subplots(figsize=(12.8, 7.2), dpi=100)
    ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4)
    ax.set_title(f"{f.stem}: most atypical score {scores.min():.3f}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    frames.append(imageio.imread(buf.getvalue()))
imageio.mimsave(out, frames, duration=0.5, loop=0)
"""
)


def _images_and_log(run, n: int) -> None:
    """Thumbnails for every eval row (export shows the top outliers) and a loss log."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(2)
    run.images_dir.mkdir(exist_ok=True)
    for image_id in pd.read_csv(run.eval_csv)["id"]:
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(run.image_path(image_id))
    steps = np.arange(1, 51)
    pd.DataFrame({"step": steps, "epoch": steps / 50, "loss": 2.3 * np.exp(-steps / 15)}).to_csv(
        run.log_csv, index=False
    )


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{args[2:4]} failed: {done.stderr[-1500:]}")
    return time.perf_counter() - start


def versus_notebook(n: int, snapshots: int, pairs: int) -> Paired:
    """Seconds of ``analyze`` + ``export`` (GIF) against the notebook way, whole processes, on a
    synthetic ``n`` x 768 run of ``snapshots`` snapshots, in ``pairs`` alternating pairs."""
    cli = [sys.executable, "-m", "spotreview"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir, _, _ = _make_run(tmp / "run", n, snapshots)
        _images_and_log(run_dir, n)
        gif, root = str(tmp / "out.gif"), str(run_dir.root)

        def ours() -> float:
            shutil.rmtree(run_dir.analysis_dir, ignore_errors=True)
            return _wall(cli + ["analyze", root]) + _wall(cli + ["export", root, "--out", gif, "--force"])

        def notebook() -> float:
            return _wall([sys.executable, "-c", NOTEBOOK, root, gif])

        return paired(ours, notebook, pairs)


def _fixed_costs(n: int, snapshots: int) -> tuple[float, float]:
    """Median of 3 wall seconds: ``spotreview --help``, and ``analyze`` of an analysed run."""
    cli = [sys.executable, "-m", "spotreview"]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, _, _ = _make_run(Path(tmp) / "run", n, snapshots)
        _wall(cli + ["analyze", str(run_dir.root)])
        helps = sorted(_wall(cli + ["--help"]) for _ in range(3))
        again = sorted(_wall(cli + ["analyze", str(run_dir.root)]) for _ in range(3))
    return helps[1], again[1]


def run(quick: bool = False, **_) -> list[dict]:
    n, snapshots = (1000, 3) if quick else (10_000, 6)
    result = versus_notebook(n, snapshots, pairs=2 if quick else 6)
    helps, again = _fixed_costs(n, snapshots)
    size = f"{n} x 768 x {snapshots} snapshots"
    return [
        dict(
            benchmark="postprocess",
            measure=f"analyze + export GIF, {size}, whole processes",
            unit="s",
            value=result.ours_median,
            baseline=result.baseline_median,
            ratio=result.ratio,
            target=">= 5x",
            met=result.ratio >= 5,
            note="baseline: the notebook way (new OOD per snapshot, PCA, chained scipy procrustes, pyplot PNG "
            f"per frame, imageio GIF); {result.summary()}",
        ),
        dict(
            benchmark="postprocess",
            measure="`spotreview --help`, whole process",
            unit="s",
            value=helps,
            note="median of 3",
        ),
        dict(
            benchmark="postprocess",
            measure=f"`spotreview analyze` of an analysed run, {size}",
            unit="s",
            value=again,
            note="median of 3: the fixed cost of a command with nothing to compute",
        ),
    ]
