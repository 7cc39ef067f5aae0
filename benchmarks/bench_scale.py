"""Scale check (issue 23, item 4): 100k images x 768 x 10 snapshots end to end on one machine.

A synthetic run (``bench_analyze._make_run``'s clustered embeddings and random probabilities,
a manifest) with one distinct 32x32 noise PNG per image (CIFAR-sized, the worst case for PNG
and thumbnail sizes), written by a thread pool (PIL's encoder releases the GIL). Every stage
runs as its own process, start-up included, and reports its wall time and peak RSS:

* ``spotreview analyze`` (also per snapshot);
* the review table, ``build_table`` (``benchmarks.scale_stages table``: the library call
  behind ``spotreview review``), saved as ``review.parquet``;
* Spotlight serving it, ``start_review`` plus the page in headless Chromium until the review
  table shows rows (``benchmarks.scale_stages review``); the peak of the review process and of
  its Spotlight server are both reported (the browser's is not);
* ``spotreview export`` to GIF, MP4 and the HTML player (``--force``: nothing is approved).

Peak RSS is the child's ``ru_maxrss`` (the largest process of the stage's tree that has been
waited for) or, for the library stages, its own ``VmHWM``. Goals: every command <= 12 GiB, the
table <= 20 s, analyze <= 40 s a snapshot, the HTML <= 60 MB. ``--n``, ``--snapshots``;
``--quick``: 5,000 x 3. One stage at a time on a kept run (the full size takes long on a busy
machine)::

    python -m benchmarks.bench_scale make /tmp/scale/run 100000 10
    python -m benchmarks.bench_scale analyze /tmp/scale/run     # then table, review, export
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .bench_analyze import CLASSES, DIM, _load, _make_run

ROOT = Path(__file__).resolve().parent.parent
PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)
RSS_GOAL_GIB = 12.0
TABLE_GOAL_S = 20.0
ANALYZE_GOAL_S = 40.0  # a snapshot
HTML_GOAL_MB = 60.0
IMAGE_SIZE = 32


def _write_images(run, ids: list[str], seed: int = 0) -> float:
    """One distinct seeded noise PNG per id; returns the seconds it took."""
    from PIL import Image

    run.images_dir.mkdir(exist_ok=True)
    start = time.perf_counter()

    def write(chunk: int) -> None:
        rng = np.random.default_rng([seed, chunk])
        for i in ids[chunk : chunk + 1000]:
            pixels = rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(run.image_path(i))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(0, len(ids), 1000)))
    return time.perf_counter() - start


def make_scale_run(root: Path, n: int, snapshots: int):
    """The run every stage reads: embeddings, probs, eval.csv, a manifest and the images."""
    from spotreview.rundir.atomic import write_json
    from spotreview.rundir.evalset import read_eval

    run, _, _ = _make_run(root, n, snapshots)
    names = [f"c{k}" for k in range(CLASSES)]
    write_json(run.manifest, {"model": "synthetic", "dataset": "synthetic", "class_names": names})
    seconds = _write_images(run, list(read_eval(run)["id"]))
    return run, seconds


def _command(*args: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, stdout) of one process under the ``ru_maxrss`` wrapper."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    lines = done.stdout.strip().splitlines()
    return wall, int(lines[-1]) / 2**20, "\n".join(lines[:-1])


def _spotreview(*args: str) -> tuple[float, float, str]:
    return _command(sys.executable, "-m", "spotreview", *args)


def _library(stage: str, run) -> tuple[float, float, dict]:
    wall, peak, out = _command(sys.executable, "-m", "benchmarks.scale_stages", stage, str(run.root))
    return wall, peak, json.loads(out.splitlines()[-1])


def _row(name: str, size: str, wall: float, peak: float, **extra) -> dict:
    row = dict(benchmark="scale", measure=f"{name}, {size}", value=wall, unit="s", note=f"peak RSS {peak:.2f} GiB")
    row.update(extra)
    return row


def _rss_row(name: str, peak: float) -> dict:
    return dict(
        benchmark="scale",
        measure=f"{name} peak RSS",
        value=peak,
        unit="GiB",
        target=f"<= {RSS_GOAL_GIB:g} GiB",
        met=peak <= RSS_GOAL_GIB,
    )


def _analyze_rows(run, size: str, snapshots: int) -> list[dict]:
    wall, peak, _ = _spotreview("analyze", str(run.root), "-q")
    per = wall / snapshots
    return [
        _row("spotreview analyze (s, whole process)", size, wall, peak),
        dict(
            _row("analyze per snapshot", size, per, peak), target=f"<= {ANALYZE_GOAL_S:g} s", met=per <= ANALYZE_GOAL_S
        ),
        _rss_row("analyze", peak),
    ]


def _table_rows(run, size: str) -> list[dict]:
    wall, peak, got = _library("table", run)
    mb = run.review_table.stat().st_size / 1e6
    return [
        dict(
            _row("build_table (s, the call)", size, got["seconds"], peak),
            target=f"<= {TABLE_GOAL_S:g} s",
            met=got["seconds"] <= TABLE_GOAL_S,
            note=f"whole process {wall:.1f} s; review.parquet {mb:.1f} MB; peak RSS {peak:.2f} GiB",
        ),
        _rss_row("build_table", peak),
    ]


def _review_rows(run, size: str) -> list[dict]:
    wall, peak, got = _library("review", run)
    shown = got["id_cells"] > 0
    server = got["server_peak_gib"]
    return [
        dict(
            _row("start_review (s, table built + Spotlight serving)", size, got["seconds_to_serve"], got["peak_gib"]),
            note=f"review process peak {got['peak_gib']:.2f} GiB, its Spotlight server {server:.2f} GiB",
        ),
        dict(
            _row("Spotlight page in headless Chromium until the table shows rows", size, got["seconds_to_rows"], peak),
            target="rows shown",
            met=shown,
            note=f"{got['id_cells']} id cells drawn; whole process {wall:.1f} s",
        ),
        _rss_row("review process", got["peak_gib"]),
        _rss_row("its Spotlight server", server),
    ]


def _export_rows(run, size: str, out: Path) -> list[dict]:
    snapshots = len(run.snapshots())
    rows = []
    for kind in ("gif", "mp4", "html"):
        path = out / f"animation.{kind}"
        wall, peak, _ = _spotreview("export", str(run.root), "--force", "-q", "--out", str(path))
        mb = path.stat().st_size / 1e6
        row = _row(f"spotreview export {kind.upper()} (s, whole process)", size, wall, peak)
        row["note"] += f"; file {mb:.1f} MB"
        if kind == "html":
            row.update(target=f"<= {HTML_GOAL_MB:g} MB", met=mb <= HTML_GOAL_MB)
        else:  # "works": the file decodes, one frame per snapshot
            frames = _frames(path)
            row.update(target=f"{snapshots} frames", met=frames == snapshots)
            row["note"] += f"; {frames} frames decoded"
        rows += [row, _rss_row(f"export {kind.upper()}", peak)]
    return rows


def _frames(path: Path) -> int:
    """Frames in a GIF (PIL) or an MP4 (decoded by imageio-ffmpeg's ffmpeg)."""
    if path.suffix == ".gif":
        from PIL import Image

        with Image.open(path) as gif:
            return gif.n_frames
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def run(quick: bool = False, n: int | None = None, snapshots: int | None = None) -> list[dict]:
    n = n or (5000 if quick else 100_000)
    snapshots = snapshots or (3 if quick else 10)
    size = f"{n}x{DIM}x{snapshots}"
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, image_s = make_scale_run(Path(tmp) / "run", n, snapshots)
        rows = [dict(benchmark="scale", measure=f"writing {n} {IMAGE_SIZE}x{IMAGE_SIZE} PNGs", value=image_s, unit="s")]
        for stage in (
            lambda: _analyze_rows(run_dir, size, snapshots),
            lambda: _table_rows(run_dir, size),
            lambda: _review_rows(run_dir, size),
            lambda: _export_rows(run_dir, size, Path(tmp)),
        ):
            done = stage()
            load = _load()  # the other jobs on the machine, right after this stage
            for row in done:
                row["note"] = "; ".join(filter(None, (row.get("note"), load)))
            rows += done
            print(f"  {done[0]['measure']}: {done[0]['value']:.1f} s ({load})", file=sys.stderr, flush=True)
    return rows


def _one_stage(argv: list[str]) -> None:
    """``make DIR N SNAPSHOTS``, or ``analyze|table|review|export DIR``: one stage at a time on
    one run, as the full-size figures in RESULTS.md were taken on a busy machine."""
    from spotreview.rundir.run import Run

    from .__main__ import table

    stage, root = argv[0], Path(argv[1])
    if stage == "make":
        _, seconds = make_scale_run(root, int(argv[2]), int(argv[3]))
        print(f"wrote {root} ({argv[2]} PNGs in {seconds:.1f} s; {_load()})")
        return
    from spotreview.rundir.evalset import read_eval_columns

    run_dir = Run(root)
    snapshots = len(run_dir.snapshots())
    size = f"{len(read_eval_columns(run_dir, paths=False)['id'])}x{DIM}x{snapshots}"
    rows = {
        "analyze": lambda: _analyze_rows(run_dir, size, snapshots),
        "table": lambda: _table_rows(run_dir, size),
        "review": lambda: _review_rows(run_dir, size),
        "export": lambda: _export_rows(run_dir, size, root),  # RUN/animation.*
    }[stage]()
    load = _load()
    print(table([dict(row, note="; ".join(filter(None, (row.get("note"), load)))) for row in rows]))


if __name__ == "__main__":
    _one_stage(sys.argv[1:])
