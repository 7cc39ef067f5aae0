"""The review table: one row per evaluation image, its whole story over the snapshots.

"First" and "last" are the first and last snapshot by step number (``Analysis.steps`` is
ascending), so ``pca_first_*`` is the model before (or earliest in) fine-tuning and
``pca_last_*`` the final model. Both coordinate pairs come from the aligned frame of
reference written by ``analyze``, so distances between them (``movement``) mean something.

Image paths are relative to the run (``images/ID.png``), so ``review.parquet`` can be
handed on; :func:`absolute_images` makes them absolute for serving. A run that cannot be
written (read-only) gets its table in a cache directory instead (:func:`table_path`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from spotreview.errors import ReviewError, RunDirError
from spotreview.rundir.atomic import atomic_path
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run, user_cache_dir

logger = logging.getLogger(__name__)

#: Columns Spotlight shows as categories of class names, when present.
CATEGORY_COLUMNS = ("label", "prediction_first", "prediction_last")
#: ``outlier_status`` values, in category-code order.
STATUSES = ("persistent", "resolved", "emerging", "none")
#: Per-image trajectories over every snapshot (Spotlight ``Sequence1D``: steps, values).
TRAJECTORY_COLUMNS = ("outlier_score_trajectory", "outlier_rank_trajectory")
#: The columns a row's ``summary`` text names.
SUMMARY_COLUMNS = frozenset(
    "id label prediction_last correct_last outlier_rank_first outlier_rank_last outlier_status data_map_region "
    "learned_step confidence_mean confidence_std forgetting_events label_quality_last is_label_issue_last "
    "exclude exclude_reason".split()
)
#: The last snapshot's embedding, only with ``embeddings=True`` and never saved.
EMBEDDING_COLUMN = "embedding_last"


def default_threshold(n_images: int, top_k: int) -> int:
    """The outlier threshold on rank: max(top_k, 1 % of the images, rounded up)."""
    return max(int(top_k), math.ceil(0.01 * n_images), 1)


def outlier_status(rank_first, rank_last, threshold: int):
    """``persistent`` (rank <= threshold at the first and the last snapshot), ``resolved``
    (first only), ``emerging`` (last only) or ``none``; (n,) object array of str."""
    import numpy as np

    first, last = np.asarray(rank_first) <= threshold, np.asarray(rank_last) <= threshold
    codes = np.select([first & last, first, last], [0, 1, 2], default=3)
    return np.asarray(STATUSES, dtype=object)[codes]


def table_path(run: Run) -> Path:
    """Where ``run``'s review table is written: ``RUN/review.parquet``, or, when the run
    cannot be written, ``$XDG_CACHE_HOME/spotreview/tables/<digest of its path>/review.parquet``."""
    if os.access(run.set_dir, os.W_OK) and (not run.review_table.exists() or os.access(run.review_table, os.W_OK)):
        return run.review_table
    key = hashlib.sha256(str(run.set_dir.resolve()).encode()).hexdigest()[:16]
    name = run.root.name if run.image_set == "eval" else f"{run.root.name}-{run.image_set}"
    return user_cache_dir() / "tables" / f"{name}-{key}" / "review.parquet"


def _label_issues(run: Run, a, df) -> None:
    """``label_quality_last``, ``is_label_issue_last`` from cleanlab on the last snapshot's
    probabilities (only when every snapshot has them); a failure is a warning, not an error."""
    import numpy as np

    if a.predictions is None:
        return
    df["correct_last"] = a.predictions[-1] == a.labels
    probs = np.load(run.probs_path(int(a.steps[-1])), allow_pickle=False).astype(np.float64)
    probs /= probs.sum(1, keepdims=True)
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        quality = get_label_quality_scores(a.labels, probs)
        # n_jobs=1: no process pool, which is slower at these sizes and would fork a process
        # whose Spotlight threads run when a review refreshes its table
        issues = find_label_issues(a.labels, probs, n_jobs=1)
    except (ValueError, AssertionError) as e:  # e.g. a class with too few images
        logger.warning("no label-quality columns: cleanlab could not score the labels (%s)", e)
        return
    df["label_quality_last"] = np.asarray(quality, dtype=np.float64)
    df["is_label_issue_last"] = np.asarray(issues, dtype=bool)


def build_table(
    run: Run | str | os.PathLike,
    *,
    save: bool = True,
    outlier_threshold: int | None = None,
    embeddings: bool = False,
    analysis=None,
    image_set: str | None = None,
):
    """Build (and by default save as ``review.parquet``, see :func:`table_path`) the review
    table of ``run``'s evaluation set, or of ``image_set`` (``"train"``: the recorded
    training images, saved as ``train/review.parquet``; None: the set ``run`` views).

    Returns a ``pandas.DataFrame`` with one row per image of the set, in the analysis' row
    order (S snapshots):

    ============================  ========  ==================================================
    column                        dtype     meaning
    ============================  ========  ==================================================
    id                            str       the image's stable id
    image                         str       path of the PNG relative to the run
    label                         str       true class name
    prediction_first/_last        str       predicted class name (only when probs exist)
    correct_last                  bool      prediction_last == label (only with probs)
    label_quality_last            float64   cleanlab label-quality score at the last
                                            snapshot, 0..1; LOWER = more likely mislabelled
    is_label_issue_last           bool      cleanlab ``find_label_issues`` flags the label
    pca_first_x/_y, pca_last_x/_y float32   aligned 2-D PCA, one frame for all snapshots
    outlier_score_first/_last     float64   cleanlab OOD score; lower = more atypical
    outlier_rank_first/_last      int64     1 = most atypical at that snapshot
    outlier_status                str       persistent / resolved / emerging / none: rank
                                            <= ``outlier_threshold`` at the first and last,
                                            first only, last only, neither
    outlier_score_trajectory      (2, S)    row 0 the training steps, row 1 the score
    outlier_rank_trajectory       (2, S)    row 0 the training steps, row 1 the rank
    movement                      float32   distance between first and last aligned position
    confidence_mean               float64   mean p(label) over the snapshots; LOWER = the
                                            model believes the label less (probs only)
    confidence_std                float64   its std (ddof 0); HIGHER = belief changed more
    correct_fraction              float64   share of snapshots predicting the label
    forgetting_events             int64     correct -> wrong between consecutive snapshots
    learned_step                  float64   first step from which it stays correct; NaN
                                            when wrong at the last snapshot
    margin_mean                   float64   mean p(label) - max other p (AUM); LOWER = more
                                            often beaten by another class
    data_map_region               str       easy / ambiguous / hard (analyze's thresholds)
    neighbour_change              float64   1 - Jaccard of the high-D neighbours, first vs
                                            last snapshot; HIGHER = moved more (every run)
    exclude                       bool      the reviewer excluded the row (exclusions.json)
    exclude_reason                str       why ("" when not excluded)
    summary                       str       Markdown: the values above that decide, named
    embedding_last                (dim,)    float32 last embedding (``embeddings=True``;
                                            never saved in ``review.parquet``)
    ============================  ========  ==================================================

    ``outlier_threshold``: a rank; None for :func:`default_threshold`. ``analysis``: the run's
    analysis if the caller loaded it already (``load_analysis``), else it is loaded. Raises
    ``AnalysisError`` ("run `spotreview analyze RUN` first") when the run has no up-to-date
    analysis, ``RunDirError`` when ``eval.csv`` does not list an analysed id, and
    ``ReviewError`` when ``embeddings`` is asked for and the last embedding file is missing.
    """
    run = Run(run, image_set).require()
    a, images, exclusions, threshold = _checked_inputs(run, outlier_threshold, analysis)
    df = _frame(run, a, images, exclusions, threshold)
    if save:
        path = table_path(run)
        if path != run.review_table:
            logger.info("%s is read-only; review table written to %s", run.root, path)
        write_table(df, path)
    if embeddings:
        df[EMBEDDING_COLUMN] = list(_last_embedding(run, a))
    return df


def _checked_inputs(run: Run, outlier_threshold: int | None, analysis=None):
    """What the table is built from, every part checked: the analysis, image paths relative
    to the run (in the analysis' row order), the exclusions and the outlier threshold."""
    from spotreview.analysis.store import load_analysis

    a = analysis if analysis is not None else load_analysis(run)
    ev = read_eval_columns(run)
    path_of = dict(zip(ev["id"], ev["path"]))  # each checked to stay inside the run
    missing = [i for i in a.ids if i not in path_of]
    if missing:
        raise RunDirError(
            f"{run.eval_csv} lacks {len(missing)} analysed id(s) (e.g. {', '.join(missing[:3])}); "
            f"re-run `spotreview embed {run.root}` and `spotreview analyze {run.root}`"
        )
    images = _relative_to(run.root.resolve(), [path_of[i] for i in a.ids])  # the table can be handed on
    exclusions = read_exclusions(run)
    threshold = default_threshold(len(a.ids), a.top_k) if outlier_threshold is None else int(outlier_threshold)
    if threshold < 1:
        raise ReviewError(f"--outlier-threshold must be a rank >= 1, not {threshold}")
    return a, images, exclusions, threshold


def _relative_to(root: Path, paths: list[str]) -> list[str]:
    """``paths`` (absolute, inside ``root``) relative to ``root``, with ``/`` separators.
    A prefix cut, not ``os.path.relpath`` per image, which dominated the table at 100k rows."""
    prefix = os.path.join(str(root), "")
    rel = [p[len(prefix) :] if p.startswith(prefix) else os.path.relpath(p, root) for p in paths]
    return rel if os.sep == "/" else [r.replace(os.sep, "/") for r in rel]


def trajectories(steps, values):
    """(n,) list of (2, S) float64 cells, row 0 ``steps`` (S,), row 1 ``values`` (S, n) of
    that image: views into one (n, 2, S) array, made in one go rather than one per image."""
    import numpy as np

    values = np.asarray(values)
    out = np.empty((values.shape[1], 2, values.shape[0]), dtype=np.float64)
    out[:, 0, :] = np.asarray(steps, dtype=np.float64)
    out[:, 1, :] = values.T
    return list(out)


def _frame(run: Run, a, images: list[str], exclusions: dict[str, str], threshold: int):
    """The review table's columns (see :func:`build_table`) from checked inputs."""
    import numpy as np
    import pandas as pd

    from spotreview.analysis.dynamics import COLUMNS as DYNAMICS_COLUMNS

    names = np.asarray([str(c) for c in a.class_names], dtype=object)
    first, last = a.coords[0], a.coords[-1]
    df = pd.DataFrame({"id": [str(i) for i in a.ids], "image": images, "label": names[a.labels]})
    if a.predictions is not None:
        df["prediction_first"] = names[a.predictions[0]]
        df["prediction_last"] = names[a.predictions[-1]]
    _label_issues(run, a, df)
    for which, xy in (("first", first), ("last", last)):
        df[f"pca_{which}_x"] = xy[:, 0].astype(np.float32)
        df[f"pca_{which}_y"] = xy[:, 1].astype(np.float32)
    for which, k in (("first", 0), ("last", -1)):
        df[f"outlier_score_{which}"] = a.scores[k].astype(np.float64)
        df[f"outlier_rank_{which}"] = a.ranks[k].astype(np.int64)
    df["outlier_status"] = outlier_status(a.ranks[0], a.ranks[-1], threshold)
    for col, values in zip(TRAJECTORY_COLUMNS, (a.scores, a.ranks)):
        df[col] = trajectories(a.steps, values)
    df["movement"] = np.linalg.norm(last - first, axis=1).astype(np.float32)
    for name in DYNAMICS_COLUMNS:  # see spotreview.analysis.dynamics; absent without probs
        if name in a.dynamics.columns:
            df[name] = a.dynamics.columns[name]
    df["exclude"] = np.array([i in exclusions for i in a.ids], dtype=bool)
    df["exclude_reason"] = [str(exclusions.get(i) or "") for i in a.ids]
    df["summary"] = _summaries(df)
    df.attrs.update(class_names=[str(c) for c in names], outlier_threshold=threshold)
    return df


def _summaries(df) -> list[str]:
    """One Markdown text per row with every decision-relevant value next to its name
    (Spotlight 1.8's inspector shows a one-line lens without its title)."""
    rows = []
    cols = set(df.columns)
    # only the columns a summary names: a tuple of every column per row costs more than the text
    used = [c for c in df.columns if c in SUMMARY_COLUMNS]
    for r in df[used].itertuples(index=False):
        lines = [f"**image id** {r.id}"]
        label = f"**true label** {r.label}"
        if "prediction_last" in cols:
            label += f" · **prediction, last** {r.prediction_last}" + (" (correct)" if r.correct_last else " (wrong)")
        lines.append(label)
        lines.append(
            f"**outlier rank** (1 = most atypical) first {r.outlier_rank_first} → last "
            f"{r.outlier_rank_last} · **status** {r.outlier_status}"
        )
        if "data_map_region" in cols:
            learned = "never" if math.isnan(r.learned_step) else f"step {r.learned_step:.0f}"
            lines.append(
                f"**data map** {r.data_map_region} (confidence {r.confidence_mean:.3f} ± {r.confidence_std:.3f}) · "
                f"**forgotten** {r.forgetting_events}× · **learned** {learned}"
            )
        if "label_quality_last" in cols:
            issue = "yes" if r.is_label_issue_last else "no"
            lines.append(
                f"**label quality, last** {r.label_quality_last:.3f} (lower = worse) · **label issue** {issue}"
            )
        if r.exclude:
            lines.append(f"**excluded** {r.exclude_reason or 'yes'}")
        rows.append("  \n".join(lines))
    return rows


def _last_embedding(run: Run, a):
    import numpy as np

    path = run.embedding_path(int(a.steps[-1]))
    if not path.is_file():
        raise ReviewError(
            f"--embeddings needs {path}, which is missing; re-run `spotreview embed {run.root}` "
            f"or review without --embeddings"
        )
    x = np.load(path, allow_pickle=False)
    if x.shape[0] != len(a.ids):
        raise ReviewError(
            f"{path} has {x.shape[0]} rows, the analysis {len(a.ids)}; re-run `spotreview analyze {run.root}`"
        )
    return np.asarray(x, dtype=np.float32)


def write_table(df, path: str | os.PathLike) -> Path:
    """Write a review table as parquet (atomically); trajectories as nested lists, the
    embedding column never, the class names and threshold in the file's metadata."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = df.drop(columns=[EMBEDDING_COLUMN, *TRAJECTORY_COLUMNS], errors="ignore")
    table = pa.Table.from_pandas(out, preserve_index=False)
    for col in TRAJECTORY_COLUMNS:  # back in their place, as list<list<double>>
        if col in df:
            table = table.add_column(list(df.columns).index(col), col, _nested_lists(df[col]))
    meta = dict(table.schema.metadata or {})
    meta[b"spotreview"] = json.dumps(df.attrs).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return path


def _nested_lists(cells):
    """An arrow list<list<double>> array of (2, S) cells, built from one stacked array rather
    than from a Python list per cell; cells of differing shapes take the per-cell way."""
    import numpy as np
    import pyarrow as pa

    try:
        stacked = np.stack(list(cells)).astype(np.float64, copy=False) if len(cells) else None
    except ValueError:  # cells of differing shapes
        stacked = None
    if stacked is None or stacked.ndim != 3 or stacked.shape[2] == 0:
        return pa.array(
            [np.asarray(cell, dtype=np.float64).tolist() for cell in cells], pa.list_(pa.list_(pa.float64()))
        )
    _, rows, width = stacked.shape
    flat = stacked.reshape(-1)
    inner_type = pa.list_(pa.float64())
    inner = pa.ListArray.from_arrays(np.arange(0, flat.size + 1, width, dtype=np.int32), pa.array(flat), inner_type)
    return pa.ListArray.from_arrays(np.arange(0, len(inner) + 1, rows, dtype=np.int32), inner, pa.list_(inner_type))


def read_table(path: str | os.PathLike):
    """Read a table written by :func:`write_table`: trajectories back to (2, S) float64
    arrays, class names and threshold back into ``df.attrs``."""
    import json

    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    df = table.to_pandas()
    meta = (table.schema.metadata or {}).get(b"spotreview")
    df.attrs.update(json.loads(meta) if meta else {})
    for col in TRAJECTORY_COLUMNS:
        if col in df:
            df[col] = [np.stack([np.asarray(r, dtype=np.float64) for r in cell]) for cell in df[col]]
    return df


def absolute_images(df, root: str | os.PathLike):
    """A copy of ``df`` whose relative ``image`` paths are made absolute against ``root``."""
    root = str(Path(root).resolve())
    out = df.copy()
    out["image"] = [os.path.join(root, p) for p in df["image"]]  # not a Path per row: 100k rows
    return out
