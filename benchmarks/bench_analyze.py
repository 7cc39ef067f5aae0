"""analyze: seconds per snapshot (cleanlab OOD + kNN accuracy + PCA + trustworthiness + storage) by size.

Synthetic clustered float32 embeddings (10 classes, 768 dims) in a bare run directory
(eval.csv, embeddings, probs). Each figure is the full ``analyze()`` call divided by the
number of snapshots: reading, hashing, the exact neighbour search (``analysis/outliers.py``),
cleanlab scores, kNN accuracy, PCA, alignment and the atomic writes. The baseline at 10k is
the former implementation, in memory: cleanlab's ``create_knn_graph_and_index`` (sklearn's
float32 brute-force search) shared by cleanlab's scorer and sklearn's kNN vote, plus the
same PCA. At 50k that path takes ~45 s a snapshot; it is estimated from 10k (x 25, the
search is quadratic) unless ``--baseline-large`` measures it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .paired import Paired, paired

DIM = 768
CLASSES = 10
TARGET_S = 1.2  # issue 12: 10k x 768 per snapshot
TARGET_LARGE_S = 10.0  # issue 12: 50k x 768 per snapshot


def _embeddings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centres = rng.normal(0, 1, (CLASSES, DIM)).astype(np.float32)
    # a shared offset like real CLS vectors have, clusters, and per-image noise
    x = 2.0 + 0.6 * centres[labels] + rng.normal(0, 1, (n, DIM)).astype(np.float32)
    return x.astype(np.float32), labels


# The notebook way's analysis (what the seed article's code does, written plainly): per snapshot
# a new cleanlab OutOfDistribution fitted on the features, a 2-D PCA and scipy's procrustes
# chained to the previous frame. A script's text, so that bench_postprocess runs it as a whole
# process (with its GIF) and versus_notebook times it in memory, the same lines both ways.
NOTEBOOK_ANALYSIS = r"""
import warnings
from pathlib import Path
import numpy as np
from cleanlab.outlier import OutOfDistribution
from sklearn.decomposition import PCA
from scipy.spatial import procrustes

def analysed(run):
    files = sorted((Path(run) / "embeddings").glob("step-*[0-9].npy"), key=lambda p: int(p.stem.split("-")[1]))
    prev = None
    for f in files:
        x = np.load(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = OutOfDistribution().fit_score(features=x)
        xy = PCA(n_components=2).fit_transform(x)
        if prev is not None:
            _, xy, _ = procrustes(prev, xy)
        prev = xy
        yield f, scores, xy
"""


def _make_run(root: Path, n: int, snapshots: int):
    import pandas as pd

    from spotreview.rundir.atomic import save_npy
    from spotreview.rundir.run import Run

    run = Run(root)
    root.mkdir(parents=True)
    x, labels = _embeddings(n, seed=0)
    ids = [f"img-{i:06d}" for i in range(n)]
    pd.DataFrame(
        {"id": ids, "label": labels, "class_name": [f"c{k}" for k in labels], "image": [f"images/{i}.png" for i in ids]}
    ).to_csv(run.eval_csv, index=False)
    rng = np.random.default_rng(1)
    for s in range(snapshots):
        save_npy(run.embedding_path(10 * s), x + rng.normal(0, 0.1, x.shape).astype(np.float32))
        probs = rng.dirichlet(np.ones(CLASSES), n).astype(np.float32)
        save_npy(run.probs_path(10 * s), probs)
    return run, x, labels


def _time_analyze(n: int, snapshots: int) -> tuple[float, float, float]:
    """Per snapshot: (wall seconds, process CPU seconds) of a fresh analyze; then the wall
    seconds of an unchanged re-run of all snapshots."""
    from spotreview.analysis.analyze import analyze

    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = _make_run(Path(tmp) / "run", n, snapshots)
        t, c = time.perf_counter(), time.process_time()
        analyze(run, quiet=True)
        wall, cpu = (time.perf_counter() - t) / snapshots, (time.process_time() - c) / snapshots
        t = time.perf_counter()
        analyze(run, quiet=True)
        again = time.perf_counter() - t
    return wall, cpu, again


def versus_notebook(n: int, snapshots: int, pairs: int) -> Paired:
    """Seconds per snapshot of a fresh ``analyze()`` against the notebook way's analysis
    (:data:`NOTEBOOK_ANALYSIS`), both in this process with their imports done, on the same
    synthetic ``n`` x 768 run of ``snapshots`` snapshots, in ``pairs`` alternating pairs.
    ``analyze`` does more (kNN accuracy, trustworthiness, dynamics, atomic writes)."""
    import shutil

    from spotreview.analysis.analyze import analyze

    notebook = {}
    exec(NOTEBOOK_ANALYSIS, notebook)  # noqa: S102 - our own script's text, as bench_postprocess runs it
    with tempfile.TemporaryDirectory() as tmp:
        warm, _, _ = _make_run(Path(tmp) / "warm", 200, 2)
        analyze(warm, quiet=True)  # imports and first-call costs are not per-snapshot costs
        list(notebook["analysed"](warm.root))
        run, _, _ = _make_run(Path(tmp) / "run", n, snapshots)

        def ours() -> float:
            shutil.rmtree(run.analysis_dir, ignore_errors=True)
            start = time.perf_counter()
            analyze(run, quiet=True)
            return time.perf_counter() - start

        def notebook_way() -> float:
            start = time.perf_counter()
            for _ in notebook["analysed"](run.root):
                pass
            return time.perf_counter() - start

        return paired(ours, notebook_way, pairs).scaled(1 / snapshots)


def _former_scores_and_knn_accuracy(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """The implementation before issue 12: cleanlab's graph, scored by cleanlab, voted by sklearn."""
    import contextlib
    import io
    import warnings

    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
    from cleanlab.outlier import OutOfDistribution
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        graph, _ = create_knn_graph_and_index(x, n_neighbors=10)
        index = NearestNeighbors(n_neighbors=10, metric="precomputed").fit(graph)
        scores = OutOfDistribution(params={"knn": index}).score(features=graph)
        voter = KNeighborsClassifier(n_neighbors=5, metric="precomputed").fit(graph, labels)
        knn_accuracy = float((voter.predict(graph) == labels).mean())
    return np.asarray(scores, dtype=np.float64), knn_accuracy


def _time_former(n: int) -> tuple[float, float]:
    """Former per-snapshot computation in memory (graph, scores, vote, PCA): wall seconds and
    the largest score difference from the current implementation on the same data."""
    from spotreview.analysis.analyze import _outlier_scores_and_knn_accuracy
    from spotreview.analysis.projection import pca_2d

    x, labels = _embeddings(n, seed=0)
    t = time.perf_counter()
    scores, _ = _former_scores_and_knn_accuracy(x, labels)
    pca_2d(x)
    wall = time.perf_counter() - t
    return wall, float(np.abs(scores - _outlier_scores_and_knn_accuracy(x, labels)[0]).max())


def _load() -> str:
    try:
        return "load avg " + " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return ""


# Where one analyze spends its time: (label, module file, function) as cProfile names them.
STAGES = (
    ("read eval.csv", "store.py", "read_labels"),
    ("hash sources", "store.py", "source_digests"),
    ("load embeddings + probs", "run.py", "load_array"),
    ("neighbour search", "outliers.py", "cleanlab_neighbors"),
    ("scores + kNN vote", "outliers.py", "ood_scores"),
    ("scores + kNN vote", "outliers.py", "knn_accuracy"),
    ("PCA", "projection.py", "pca_2d"),
    ("trustworthiness of the 2-D picture", "trust.py", "trustworthiness"),
    ("write step files", "store.py", "write_step"),
    ("align", "projection.py", "align_frames"),
    ("assemble + aligned.npz + summary", "store.py", "assemble"),
    ("assemble + aligned.npz + summary", "store.py", "write_analysis"),
)


def _stages(n: int, snapshots: int) -> dict[str, float]:
    """Seconds per stage of one fresh ``analyze`` (cProfile's cumulative times; a CUDA search
    ends with a copy to the host, so its kernels are inside its own time)."""
    import cProfile
    import pstats

    from spotreview.analysis.analyze import analyze

    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = _make_run(Path(tmp) / "run", n, snapshots)
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.runcall(analyze, run, quiet=True)
        total = time.perf_counter() - start
    seconds = {"total": total, **{label: 0.0 for label, _, _ in STAGES}}
    for (file, _, function), (_, _, _, cumulative, _) in pstats.Stats(profile).stats.items():
        for label, stage_file, stage_function in STAGES:
            if function == stage_function and file.endswith(stage_file):
                seconds[label] += cumulative
    return seconds


def run_device(n: int | None = None) -> list[dict]:
    """analyze as it runs on a CUDA machine (the search on the GPU): seconds per snapshot at
    10k and ``n`` (default 50k) x 768, best of 2, and where one 50k analyze spends its time.
    No baseline: the former path needs cleanlab, which a GPU machine may lack."""
    import torch

    large = n or 50_000
    _time_analyze(2000, 1)  # imports, CUDA context and kernels are not per-snapshot costs
    row = dict(benchmark="analyze", unit="s")
    name = torch.cuda.get_device_name()
    rows = []
    for size, snapshots, target in ((10_000, 3, None), (large, 2, 1.0)):
        wall, cpu, again = min(_time_analyze(size, snapshots) for _ in range(2))
        rows.append(
            dict(
                row,
                measure=f"s/snapshot {size}x{DIM}, {snapshots} snapshots ({name})",
                value=wall,
                target=f"< {target:g} s" if target else None,
                met=wall < target if target else None,
                note=f"best of 2; CPU {cpu:.2f} s/snapshot; unchanged re-run {again:.2f} s",
            )
        )
    stages = _stages(large, 2)
    total = stages.pop("total")
    rows += [
        dict(
            row,
            measure=f"stage of one {large}x{DIM} x 2 analyze: {label}",
            value=seconds,
            ratio=seconds / total,
            note=f"of {total:.2f} s (cProfile on)",
        )
        for label, seconds in stages.items()
    ]
    return rows


def run(quick: bool, baseline_large: bool = False, device: str = "auto", n: int | None = None, **_) -> list[dict]:
    import torch

    if device != "cpu" and torch.cuda.is_available():  # analyze searches on the GPU where there is one
        return run_device(n)
    small, main, large = (1000, 2000, 4000) if quick else (1000, 10_000, 50_000)
    row = dict(benchmark="analyze", unit="s")
    _time_analyze(200, 1)  # imports (torch, sklearn) are not part of the per-snapshot figure
    load_before = _load()

    wall_small, _, _ = _time_analyze(small, 3)
    # best of two at the headline size: the CPUs are shared and contention only adds time
    wall, cpu, again = min(_time_analyze(main, 3) for _ in range(2))
    former, score_diff = _time_former(main)
    wall_large, cpu_large, _ = _time_analyze(large, 1)
    if baseline_large:
        former_large, note_large = _time_former(large)[0], "former path measured"
    else:
        former_large = former * (large / main) ** 2
        note_large = f"former path estimated: {main} figure x {(large / main) ** 2:g} (quadratic search)"
    target = main == 10_000
    return [
        dict(row, measure=f"s/snapshot {small}x{DIM}", value=wall_small),
        dict(
            row,
            measure=f"s/snapshot {main}x{DIM}",
            value=wall,
            baseline=former,
            ratio=wall / former,
            target=f"<= {TARGET_S:g} s" if target else None,
            met=wall <= TARGET_S if target else None,
            note=f"best of 2; baseline: former cleanlab-graph path + same PCA, in memory; "
            f"max score difference {score_diff:.1e}; {load_before}",
        ),
        dict(row, measure=f"CPU s/snapshot {main}x{DIM}", value=cpu, note="process CPU time (user + sys), all threads"),
        dict(
            row,
            measure=f"s/snapshot {large}x{DIM}",
            value=wall_large,
            baseline=former_large,
            ratio=wall_large / former_large,
            target=f"<= {TARGET_LARGE_S:g} s" if target else None,
            met=wall_large <= TARGET_LARGE_S if target else None,
            note=f"{note_large}; CPU {cpu_large:.1f} s; {_load()}",
        ),
        dict(row, measure=f"unchanged re-run, 3 snapshots {main}x{DIM}", value=again, note="hash + load + align only"),
    ]
