"""Comparison export benchmark: file size and render time of ``spotreview compare``.

Two pairs of runs:

* **two demo runs**: the built-in demo (digits, small ViT, 20 epochs, 19 snapshots, 359
  evaluation images) at learning rates 1e-3 (A) and 3e-3 (B), the same seed. Given as
  ``BENCH_COMPARE_RUNS=A,B`` (analysed runs), else fine-tuned here into a temporary folder
  (a few minutes). Timed: the whole ``compare()`` call (loading and checking both analyses,
  the approval gate, the scene, the file), forced (no approval needed), one process.
* **two synthetic 10,000 x 20 runs**: 10 classes separating over 20 snapshots (A over 2,000
  steps, B over 1,500; their whole-number steps are slightly different shares of their runs,
  so the timeline has 34 key frames), predictions and training dynamics, a
  48-px photo-patch image per point on disk (the HTML page's thumbnails), as
  ``bench_player``/``bench_export`` use. Timed: the scene and the file from in-memory
  analyses (no analysis on disk), so the figures are the rendering's.

GIF and MP4 at 1280x720 with 2 processes rendering (the default on 2 cores), ``tween`` 0; the
HTML page's first paint (both players drawn) in headless Chromium when it is installed.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLASSES = [str(c) for c in range(10)]


@dataclass
class FakeAnalysis:
    """The fields of ``spotreview.analysis.store.Analysis`` that the comparison reads."""

    run: object
    steps: np.ndarray
    ids: list
    labels: np.ndarray
    class_names: list
    scores: np.ndarray
    ranks: np.ndarray
    coords: np.ndarray
    predictions: np.ndarray
    accuracy: np.ndarray
    knn_accuracy: np.ndarray
    dynamics: object = field(default=None)

    def top(self, snapshot, k=None, exclude=()):
        order = np.argsort(self.scores[snapshot], kind="stable")
        skip = set(exclude)
        return np.array([r for r in order if self.ids[r] not in skip][:k], dtype=np.int64)


def _images(run, ids, seed: int) -> None:
    """A 48-px patch of sklearn's sample photographs per id (photo-like: the atlas's hard case)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    run.images_dir.mkdir(parents=True, exist_ok=True)
    for i, image_id in enumerate(ids):
        photo = photos[i % 2]
        side = int(rng.integers(48, 300))
        y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        Image.fromarray(photo[y : y + side, x : x + side]).resize((48, 48)).save(run.image_path(image_id))


def _analysis(root: Path, ids, labels, last_step: int, seed: int, n_snapshots: int) -> FakeAnalysis:
    import pandas as pd

    from spotreview.analysis.dynamics import Dynamics
    from spotreview.rundir.run import Run

    rng = np.random.default_rng(seed)
    run = Run(root)
    run.root.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    centers = rng.normal(0, 4, (10, 2))
    spread = np.linspace(0, 1, n_snapshots)[:, None, None]
    coords = (rng.normal(0, 1, (n, 2))[None] + spread * centers[labels][None]).astype(np.float32)
    scores = rng.random((n_snapshots, n)) ** 3
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1) + 1
    wrong = rng.random((n_snapshots, n)) < np.linspace(0.9, 0.1, n_snapshots)[:, None]
    predictions = np.where(wrong, (labels[None] + rng.integers(1, 10, (n_snapshots, n))) % 10, labels[None])
    confidence = rng.random(n)
    regions = np.array(["easy", "ambiguous", "hard"], dtype=object)[rng.integers(0, 3, n)]
    dynamics = Dynamics(
        {
            "confidence_mean": confidence,
            "confidence_std": rng.random(n) * 0.4,
            "correct_fraction": (predictions == labels).mean(0),
            "forgetting_events": rng.integers(0, 3, n),
            "learned_step": np.where(wrong[-1], np.nan, last_step / 2),
            "margin_mean": confidence - 0.5,
            "data_map_region": regions,
            "neighbour_change": rng.random(n),
        }
    )
    steps = np.linspace(0, last_step, n_snapshots).astype(np.int64)
    log_steps = np.arange(10, last_step + 1, 10)
    pd.DataFrame(
        {"step": log_steps, "epoch": log_steps / last_step * 20, "loss": 2.3 * np.exp(-log_steps / 400) + 0.1}
    ).to_csv(run.log_csv, index=False)
    return FakeAnalysis(
        run=run,
        steps=steps,
        ids=list(ids),
        labels=labels,
        class_names=CLASSES,
        scores=scores,
        ranks=ranks,
        coords=coords,
        predictions=predictions.astype(np.int64),
        accuracy=(predictions == labels).mean(1),
        knn_accuracy=(predictions == labels).mean(1),
        dynamics=dynamics,
    )


def synthetic_pair(root: Path, n: int, n_snapshots: int):
    """Two in-memory analyses of the same ``n`` images (on disk in run A, copied to B)."""
    import shutil

    rng = np.random.default_rng(0)
    ids = [f"validation-{i:06d}" for i in range(n)]
    labels = rng.integers(0, 10, n)
    a = _analysis(root / "a", ids, labels, 2000, 1, n_snapshots)
    b = _analysis(root / "b", ids, labels, 1500, 2, n_snapshots)
    _images(a.run, ids, 3)
    shutil.copytree(a.run.images_dir, b.run.images_dir)
    return a, b


def _demo_pair(tmp: Path) -> tuple[Path, Path]:
    import spotreview

    given = os.environ.get("BENCH_COMPARE_RUNS")
    if given:
        a, b = (Path(p) for p in given.split(","))
        return a, b
    runs = []
    for name, lr in (("lr-1e-3", 1e-3), ("lr-3e-3", 3e-3)):
        run = spotreview.finetune(tmp / name, learning_rate=lr, quiet=True).run
        spotreview.analyze(run, quiet=True)
        runs.append(run.root)
    return runs[0], runs[1]


def _first_paint_ms(page: Path) -> float | None:
    """Milliseconds from navigation to both players drawn, median of 3 loads; None without Chromium."""
    import statistics
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from conftest import CHROMEDRIVER, CHROMIUM, start_chromium
    except ImportError:
        return None
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return None
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(Path(profile), (1600, 1000))
        try:
            times = []
            for _ in range(3):
                driver.get(page.resolve().as_uri())
                WebDriverWait(driver, 120).until(lambda d: d.execute_script("return document.body.dataset.ready"))
                times.append(driver.execute_script("return compare.state.readyMs"))
            return statistics.median(times)
        finally:
            driver.quit()


def _row(case: str, fmt: str, seconds: float, path: Path, frames: int, paint: float | None = None) -> list[dict]:
    size = path.stat().st_size
    rows = [
        {"benchmark": "compare", "measure": f"{case} .{fmt} render", "value": seconds, "unit": "s",
         "note": f"{frames} frames" if fmt != "html" else f"{frames} key frames"},
        {"benchmark": "compare", "measure": f"{case} .{fmt} size", "value": size, "unit": "B"},
    ]  # fmt: skip
    if paint is not None:
        rows.append({"benchmark": "compare", "measure": f"{case} .html first paint", "value": paint, "unit": "ms"})
    return rows


def run(quick: bool = False) -> list[dict]:
    import spotreview
    from spotreview.rendering.compare_figure import ComparisonRenderer
    from spotreview.rendering.compare_player import write_comparison_player
    from spotreview.rendering.compare_scene import build_comparison_scene
    from spotreview.rendering.writers import write_animation

    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not quick:
            a, b = _demo_pair(tmp)
            for fmt in ("gif", "mp4", "html"):
                out = tmp / f"demo.{fmt}"
                start = time.perf_counter()
                done = spotreview.compare(a, b, out, force=True, quiet=True)
                seconds = time.perf_counter() - start
                rows += _row(
                    "two demo runs", fmt, seconds, out, done.frames, _first_paint_ms(out) if fmt == "html" else None
                )
        n, snapshots = (1000, 5) if quick else (10_000, 20)
        case = f"two synthetic {n:,} x {snapshots}"
        pair = synthetic_pair(tmp / "synthetic", n, snapshots)
        start = time.perf_counter()
        scene = build_comparison_scene(*pair)
        seconds = time.perf_counter() - start
        rows.append({"benchmark": "compare", "measure": f"{case} scene", "value": seconds, "unit": "s",
                     "note": f"{len(scene.keys)} key frames"})  # fmt: skip
        for fmt in ("gif", "mp4"):
            out = tmp / f"synthetic.{fmt}"
            start = time.perf_counter()
            frames = write_animation(scene, out, fps=2.0, quiet=True, renderer=ComparisonRenderer)
            rows += _row(case, fmt, time.perf_counter() - start, out, frames)
        out = tmp / "synthetic.html"
        start = time.perf_counter()
        frames = write_comparison_player(out, scene, pair, exclude={})
        rows += _row(case, "html", time.perf_counter() - start, out, frames, _first_paint_ms(out))
    return rows
