"""Export benchmark: spotreview's frame renderer against the notebook way, and memory.

The notebook way: for every frame, build a new pyplot figure with the same content
(scatter of every point coloured by class, legend, title, 8 outlier thumbnails with
captions, the loss curve up to the step), save it as a PNG and read the PNG back into an
array; a GIF is then written from the list of frames. spotreview builds one figure,
updates its artists, redraws only what changes (blitting) and streams the frames from the
canvas buffer to the file. Both render the same data at the same resolution (1280x720,
dpi 100); the notebook renderer gets its thumbnails already decoded.

Memory: peak RSS of a fresh process exporting a GIF of the same 11 snapshots with 21 and
with 201 frames (``tween`` 1 and 19), serial rendering, so every byte is in that process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE, DPI = (1280, 720), 100.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeAnalysis:
    """The fields of ``spotreview.analysis_store.Analysis`` that export reads (no analysis run)."""

    run: object
    steps: np.ndarray
    ids: list
    labels: np.ndarray
    class_names: list
    scores: np.ndarray
    coords: np.ndarray
    accuracy: np.ndarray

    def top(self, snapshot, k=None, exclude=()):
        order = np.argsort(self.scores[snapshot], kind="stable")
        skip = set(exclude)
        return np.array([r for r in order if self.ids[r] not in skip][:k], dtype=np.int64)


def synthetic(root: Path, n: int, n_snapshots: int, n_classes: int = 10, seed: int = 0):
    """A run dir (images of the leaderboard rows, log.csv) and a FakeAnalysis over it.

    Classes start as one blob and separate over the snapshots, like a fine-tuning run.
    """
    import pandas as pd
    from PIL import Image

    from spotreview.rundir.run import Run

    rng = np.random.default_rng(seed)
    run = Run(root)
    run.images_dir.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, n_classes, n)
    ids = [f"img-{i:05d}" for i in range(n)]
    centers = rng.normal(0, 4, size=(n_classes, 2))
    noise = rng.normal(0, 1, size=(n, 2))
    steps = np.linspace(0, 1000, n_snapshots).astype(np.int64)
    spread = np.linspace(0, 1, n_snapshots)[:, None, None]
    coords = (noise[None] + spread * centers[labels][None]).astype(np.float32)
    scores = rng.random((n_snapshots, n))
    analysis = FakeAnalysis(
        run,
        steps,
        ids,
        labels,
        [f"class {c}" for c in range(n_classes)],
        scores,
        coords,
        np.linspace(0.1, 0.95, n_snapshots),
    )
    for row in {int(r) for i in range(n_snapshots) for r in analysis.top(i, 8)}:
        pixels = rng.integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(run.image_path(ids[row]))
    log_steps = np.arange(10, int(steps[-1]) + 1, 10)
    pd.DataFrame(
        {"step": log_steps, "epoch": log_steps / steps[-1] * 3, "loss": 2.3 * np.exp(-log_steps / 300) + 0.2}
    ).to_csv(run.log_csv, index=False)
    return analysis


def notebook_frame(scene, frame: int) -> np.ndarray:
    """(H, W, 3) uint8: a new pyplot figure per frame, saved to PNG, read back."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from spotreview.rendering.style import class_colors

    i, _, near = scene.source(frame)
    xy = scene.coords_at(frame)
    colors = class_colors(len(scene.class_names))
    fig = plt.figure(figsize=(SIZE[0] / DPI, SIZE[1] / DPI), dpi=DPI)
    grid = fig.add_gridspec(4, 6)
    ax = fig.add_subplot(grid[:, :3])
    ax.scatter(xy[:, 0], xy[:, 1], c=colors[scene.labels], s=2, linewidths=0)
    lo, hi = scene.coords.reshape(-1, 2).min(0), scene.coords.reshape(-1, 2).max(0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_title(scene.titles[near])
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color=colors[c], label=name) for c, name in enumerate(scene.class_names)
        ],
        ncol=5,
        fontsize=8,
    )
    for k, row in enumerate(scene.board[near]):
        tax = fig.add_subplot(grid[k // 4, 3 + k % 3] if k < 6 else grid[2, 3 + k - 6])
        tax.imshow(scene.thumbs[int(row)])
        tax.set_title(f"#{k + 1} {scene.class_names[scene.labels[row]]}\n{scene.board_scores[near][k]:.3f}", fontsize=8)
        tax.axis("off")
    lax = fig.add_subplot(grid[3, 3:])
    ls, lv = scene.loss
    step = scene.steps[near]
    lax.plot(ls[ls <= step], lv[ls <= step])
    lax.axvline(step, color="red")
    lax.set_xlim(0, ls[-1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return iio.imread(buf.getvalue())[..., :3]


def _fps(render, frames) -> float:
    start = time.perf_counter()
    for f in frames:
        render(f)
    return len(frames) / (time.perf_counter() - start)


def _peak_rss_mib(n: int, tween: int, notebook: bool) -> float:
    """Peak RSS (MiB) of a fresh process writing a GIF of 11 snapshots with ``tween``."""
    code = f"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.bench_export import synthetic, notebook_gif
from spotreview.rendering.scene import build_scene
from spotreview.rendering.writers import write_animation
with tempfile.TemporaryDirectory() as tmp:
    a = synthetic(Path(tmp) / "run", {n}, 11)
    scene = build_scene(a, tween={tween}, size={SIZE!r}, dpi={DPI})
    out = Path(tmp) / "a.gif"
    if {notebook}:
        notebook_gif(scene, out, fps=4)
    else:
        write_animation(scene, out, fps=4, workers=1, quiet=True)
# VmHWM, not ru_maxrss: the latter carries the parent's RSS at fork across exec.
print(int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def notebook_gif(scene, out: Path, fps: float) -> None:
    """The notebook way end to end: every frame into a list, then one GIF write."""
    import imageio.v3 as iio

    frames = [notebook_frame(scene, f) for f in range(scene.n_frames)]
    iio.imwrite(out, np.stack(frames), duration=1000 / fps, loop=0)


def run(quick: bool = False) -> list[dict]:
    from spotreview.rendering.figure import Renderer
    from spotreview.rendering.scene import build_scene
    from spotreview.rendering.writers import write_animation

    n = 2_000 if quick else 10_000
    n_fps = 6 if quick else 20
    rows = []
    bench = "export"
    with tempfile.TemporaryDirectory() as tmp:
        analysis = synthetic(Path(tmp) / "run", n, 11)
        scene = build_scene(analysis, tween=3, size=SIZE, dpi=DPI)
        frames = list(range(0, scene.n_frames, max(1, scene.n_frames // n_fps)))[:n_fps]

        renderer = Renderer(scene)
        ours = _fps(lambda f: np.array(renderer.render(f)), frames)
        notebook_frame(scene, 0)  # pyplot's first-figure setup is not per-frame cost
        theirs = _fps(lambda f: notebook_frame(scene, f), frames)
        rows.append(
            dict(
                benchmark=bench,
                measure=f"render fps, {n:,} points, 1280x720",
                value=ours,
                unit="frames/s",
                baseline=theirs,
                ratio=ours / theirs,
                target=">= 3x",
                met=ours / theirs >= 3,
                note="baseline: new pyplot figure per frame, PNG round trip",
            )
        )

        # End to end, GIF: one process vs two vs the notebook way (frames list + one write).
        gif_scene = build_scene(analysis, tween=3 if quick else 4, size=SIZE, dpi=DPI)
        n_frames = gif_scene.n_frames
        timings = {}
        for workers in (1, 2):
            start = time.perf_counter()
            write_animation(gif_scene, Path(tmp) / f"w{workers}.gif", fps=8, workers=workers, quiet=True)
            timings[workers] = n_frames / (time.perf_counter() - start)
        rows.append(
            dict(
                benchmark=bench,
                measure=f"GIF export fps, 2 processes, {n_frames} frames",
                value=timings[2],
                unit="frames/s",
                baseline=timings[1],
                ratio=timings[2] / timings[1],
                note=f"baseline: 1 process; {os.cpu_count()} cores, shared",
            )
        )
        if not quick:
            start = time.perf_counter()
            notebook_gif(gif_scene, Path(tmp) / "notebook.gif", fps=8)
            nb = n_frames / (time.perf_counter() - start)
            best = max(timings.values())
            rows.append(
                dict(
                    benchmark=bench,
                    measure=f"GIF export fps, {n_frames} frames",
                    value=best,
                    unit="frames/s",
                    baseline=nb,
                    ratio=best / nb,
                    target=">= 3x",
                    met=best / nb >= 3,
                    note="baseline: notebook frames list + imageio GIF write",
                )
            )

    small, large = _peak_rss_mib(n, 1, False), _peak_rss_mib(n, 19, False)
    rows.append(
        dict(
            benchmark=bench,
            measure="peak RSS, GIF 201 vs 21 frames",
            value=large,
            unit="MiB",
            baseline=small,
            ratio=large / small,
            target="flat (<= 1.1x)",
            met=large / small <= 1.1,
            note="streamed; serial, fresh process per case",
        )
    )
    if not quick:
        nb_small, nb_large = _peak_rss_mib(n, 1, True), _peak_rss_mib(n, 19, True)
        rows.append(
            dict(
                benchmark=bench,
                measure="peak RSS notebook way, 201 vs 21 frames",
                value=nb_large,
                unit="MiB",
                baseline=nb_small,
                ratio=nb_large / nb_small,
                note="for contrast: frames kept in a list",
            )
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1, default=float))
