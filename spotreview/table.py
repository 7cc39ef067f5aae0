"""The review table: one row per evaluation image, first vs last snapshot side by side.

"First" and "last" are the first and last snapshot by step number (``Analysis.steps`` is
ascending), so ``pca_first_*`` is the model before (or earliest in) fine-tuning and
``pca_last_*`` the final model. Both coordinate pairs come from the aligned frame of
reference written by ``analyze``, so distances between them (``movement``) mean something.
"""

from __future__ import annotations

import os

from .errors import RunDirError
from .rundir import Run, atomic_path

#: Columns Spotlight shows as categories (class names), when present.
CATEGORY_COLUMNS = ("label", "prediction_first", "prediction_last")


def build_table(run: Run | str | os.PathLike, *, save: bool = True):
    """Build (and by default save as ``review.parquet``) the review table of ``run``.

    Returns a ``pandas.DataFrame`` with one row per evaluation image, in the analysis' row
    order:

    ============================  ========  ==================================================
    column                        dtype     meaning
    ============================  ========  ==================================================
    id                            str       the image's stable id
    image                         str       absolute path of the PNG
    label                         str       true class name
    prediction_first/_last        str       predicted class name (only when probs exist)
    pca_first_x/_y, pca_last_x/_y float32   aligned 2-D PCA, one frame for all snapshots
    outlier_score_first/_last     float64   cleanlab OOD score; lower = more atypical
    outlier_rank_first/_last      int64     1 = most atypical at that snapshot
    movement                      float32   distance between first and last aligned position
    exclude                       bool      the reviewer excluded the row (exclusions.json)
    exclude_reason                str       why ("" when not excluded)
    ============================  ========  ==================================================

    Raises ``AnalysisError`` ("run `spotreview analyze RUN` first") when the run has no
    up-to-date analysis, and ``RunDirError`` when ``eval.csv`` does not list an analysed id.
    """
    import numpy as np
    import pandas as pd

    from .analysis_store import load_analysis

    run = Run(run)
    a = load_analysis(run)

    ev = run.read_eval().set_index("id")
    missing = [i for i in a.ids if i not in ev.index]
    if missing:
        raise RunDirError(
            f"{run.eval_csv} lacks {len(missing)} analysed id(s) (e.g. {', '.join(missing[:3])}); "
            f"re-run `spotreview embed {run.root}` and `spotreview analyze {run.root}`"
        )
    images = [str(run.inside(ev.at[i, "image"], source=run.eval_csv)) for i in a.ids]  # never outside RUN
    names = np.asarray(a.class_names, dtype=object)
    exclusions = run.read_exclusions()

    first, last = a.coords[0], a.coords[-1]
    df = pd.DataFrame({"id": list(a.ids), "image": images, "label": names[a.labels]})
    if a.predictions is not None:
        df["prediction_first"] = names[a.predictions[0]]
        df["prediction_last"] = names[a.predictions[-1]]
    for which, xy in (("first", first), ("last", last)):
        df[f"pca_{which}_x"] = xy[:, 0].astype(np.float32)
        df[f"pca_{which}_y"] = xy[:, 1].astype(np.float32)
    for which, k in (("first", 0), ("last", -1)):
        df[f"outlier_score_{which}"] = a.scores[k].astype(np.float64)
        df[f"outlier_rank_{which}"] = a.ranks[k].astype(np.int64)
    df["movement"] = np.linalg.norm(last - first, axis=1).astype(np.float32)
    df["exclude"] = np.array([i in exclusions for i in a.ids], dtype=bool)
    df["exclude_reason"] = [str(exclusions.get(i) or "") for i in a.ids]
    for col in ("id", "image", *CATEGORY_COLUMNS):
        if col in df:
            df[col] = df[col].astype(str)

    if save:
        with atomic_path(run.review_table) as tmp:
            df.to_parquet(tmp, index=False)
    return df
