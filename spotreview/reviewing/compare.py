"""Two runs on the same evaluation images: the check that they are, the comparison table, its issue groups.

* :func:`check_comparable` refuses (one-line ``DataError`` naming the first difference) unless
  both runs hold the same evaluation set: the same class names, image ids, labels and image
  content. Rows may come in another order: B's rows are matched to A's by id.
* :func:`comparison_table` puts both runs' review tables (``table.build_table``) side by side,
  one row per image in A's row order, with what changed from A to B.
* :func:`comparison_issue_groups` is the comparison's Issues widget: broken by B, fixed by B,
  wrong in both (pure pandas/numpy, like :mod:`spotreview.reviewing.issues`).

"A" is the run under review (``review RUN_A --compare RUN_B``), "B" the one it is compared with.
"""

from __future__ import annotations

import os

from spotreview.analysis.dynamics import NEIGHBOUR_COLUMNS, PROBABILITY_COLUMNS
from spotreview.errors import DataError
from spotreview.reviewing.issues import IssueGroup
from spotreview.rundir.run import Run

#: ``change`` values, in category-code order: A's last prediction -> B's last prediction.
CHANGES = ("fixed", "broken", "both_right", "both_wrong")
SIDES = ("a", "b")
#: Columns of each run's review table kept in the comparison, suffixed ``_a`` and ``_b`` (those present).
SIDE_COLUMNS = (
    "prediction_last",
    "correct_last",
    "label_quality_last",
    "is_label_issue_last",
    "outlier_rank_last",
    "outlier_score_last",
    "outlier_status",
    "pca_last_x",
    "pca_last_y",
    "movement",
    *PROBABILITY_COLUMNS,
    *NEIGHBOUR_COLUMNS,
)
#: Every comparison group's key and title, in the order :func:`comparison_issue_groups` returns them.
TITLES = {"broken_by_b": "broken by B", "fixed_by_b": "fixed by B", "wrong_in_both": "wrong in both runs"}


def is_comparison(df) -> bool:
    """Whether a review table is a comparison table (its ``attrs`` name the two runs)."""
    return bool(df.attrs.get("comparison"))


# --- the check ------------------------------------------------------------------------------


def check_comparable(run_a, run_b) -> list[int]:
    """B's row of every row of A (``(n,)`` list of int: A's row order) once both runs are seen
    to hold the same evaluation set; else a one-line ``DataError`` naming the first difference,
    in this order: the class names, the image ids, the labels, the image content (the PNG files,
    or their pixels where the files differ)."""
    from spotreview.analysis.store import read_labels
    from spotreview.rundir.evalset import read_eval_columns

    run_a = Run(run_a).require()
    run_b = Run(run_b, run_a.image_set).require()
    if run_a.set_dir.resolve() == run_b.set_dir.resolve():
        raise DataError(f"cannot compare {run_a.label} with itself; give two runs")
    ids_a, labels_a, names_a = read_labels(run_a)
    ids_b, labels_b, names_b = read_labels(run_b)
    differ = _refusal(run_a, run_b)
    if names_a != names_b:
        k = next((k for k, (x, y) in enumerate(zip(names_a, names_b)) if x != y), min(len(names_a), len(names_b)))
        if k < min(len(names_a), len(names_b)):
            raise differ(f"class {k} is {names_a[k]!r} in A, {names_b[k]!r} in B")
        raise differ(f"A has {len(names_a)} classes, B has {len(names_b)}")
    where_b = {image_id: row for row, image_id in enumerate(ids_b)}
    only_a = next((i for i in ids_a if i not in where_b), None)
    if only_a is not None:
        raise differ(f"image {only_a} is in A's {run_a.set_name} only")
    if len(ids_b) != len(ids_a):
        in_a = set(ids_a)
        only_b = next(i for i in ids_b if i not in in_a)
        raise differ(f"image {only_b} is in B's {run_b.set_name} only")
    rows_b = [where_b[i] for i in ids_a]
    for row, image_id in enumerate(ids_a):
        if labels_a[row] != labels_b[rows_b[row]]:
            a, b = names_a[labels_a[row]], names_a[labels_b[rows_b[row]]]
            raise differ(f"the label of image {image_id} is {a!r} in A, {b!r} in B")
    paths_a, paths_b = read_eval_columns(run_a)["path"], read_eval_columns(run_b)["path"]
    for row, image_id in enumerate(ids_a):
        if not _same_image(paths_a[row], paths_b[rows_b[row]]):
            raise differ(f"image {image_id} differs ({paths_a[row]} and {paths_b[rows_b[row]]})")
    return rows_b


def _refusal(run_a: Run, run_b: Run):
    def differ(what: str) -> DataError:
        return DataError(
            f"cannot compare {run_a.label} and {run_b.label}: {what}; compare runs of the same "
            f"evaluation set (finetune with the same --dataset, --eval-size and --seed)"
        )

    return differ


def _same_image(path_a: str | os.PathLike, path_b: str | os.PathLike) -> bool:
    """The same file content, or else the same pixels (another PNG encoder writes other bytes)."""
    from PIL import Image, UnidentifiedImageError

    from spotreview.rundir.atomic import sha256_file
    from spotreview.rundir.evalset import image_digest

    try:
        if sha256_file(path_a) == sha256_file(path_b):
            return True
        with Image.open(path_a) as a, Image.open(path_b) as b:
            return image_digest(a) == image_digest(b)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):  # missing or unreadable: not the same
        return False


# --- the table ------------------------------------------------------------------------------


def comparison_table(run_a, run_b, *, outlier_threshold: int | None = None, analyses=(None, None)):
    """Both runs' review tables side by side: a ``pandas.DataFrame``, one row per image in A's
    row order (never saved into either run).

    ==============================  ========  ==============================================
    column                          dtype     meaning
    ==============================  ========  ==============================================
    id, image, label                str       the image (its path relative to run A)
    change                          str       fixed (wrong in A, right in B at their last
                                              snapshots), broken (right in A, wrong in B),
                                              both_right, both_wrong (only with probs)
    COLUMN_a, COLUMN_b              as in     the column of A's and of B's review table,
                                    build_    for each of :data:`SIDE_COLUMNS` present
                                    table     (``outlier_rank_last_a`` ...)
    rank_change                     int64     outlier_rank_last_b - outlier_rank_last_a;
                                              negative = more atypical in B
    label_quality_change            float64   label_quality_last_b - label_quality_last_a;
                                              positive = B believes the label more
    exclude, exclude_reason         bool, str excluded in A or in B, and why ("A: ...")
    summary                         str       Markdown: both runs' values that decide
    ==============================  ========  ==============================================

    ``df.attrs``: ``class_names``, ``outlier_threshold`` (A's) and ``comparison`` (the two runs'
    folder names, ``{"a": ..., "b": ...}``). ``analyses``: the runs' analyses when the caller
    loaded them already. Raises ``DataError`` (:func:`check_comparable`) and whatever
    ``build_table`` raises for either run.
    """
    from spotreview.reviewing.table import build_table

    run_a = Run(run_a).require()
    run_b = Run(run_b, run_a.image_set).require()
    rows_b = check_comparable(run_a, run_b)
    table_a = build_table(run_a, save=False, outlier_threshold=outlier_threshold, analysis=analyses[0])
    table_b = build_table(run_b, save=False, outlier_threshold=outlier_threshold, analysis=analyses[1])
    table_b = table_b.iloc[rows_b].reset_index(drop=True)
    df = _side_by_side(table_a, table_b)
    df.attrs.update(
        class_names=table_a.attrs["class_names"],
        outlier_threshold=table_a.attrs["outlier_threshold"],
        comparison={"a": run_a.root.name, "b": run_b.root.name},
    )
    df["summary"] = _summaries(df, df.attrs["comparison"])
    return df


def _side_by_side(table_a, table_b):
    """The comparison's columns (but the summary) from two review tables in the same row order."""
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({c: table_a[c].to_numpy() for c in ("id", "image", "label")})
    if "correct_last" in table_a and "correct_last" in table_b:
        a, b = table_a["correct_last"].to_numpy(bool), table_b["correct_last"].to_numpy(bool)
        codes = np.select([~a & b, a & ~b, a & b], [0, 1, 2], default=3)
        df["change"] = np.asarray(CHANGES, dtype=object)[codes]
    for column in SIDE_COLUMNS:
        for side, table in zip(SIDES, (table_a, table_b)):
            if column in table:
                df[f"{column}_{side}"] = table[column].to_numpy()
    df["rank_change"] = (df["outlier_rank_last_b"] - df["outlier_rank_last_a"]).astype(np.int64)
    if "label_quality_last_a" in df and "label_quality_last_b" in df:
        df["label_quality_change"] = df["label_quality_last_b"] - df["label_quality_last_a"]
    excluded = table_a["exclude"].to_numpy(bool) | table_b["exclude"].to_numpy(bool)
    df["exclude"] = excluded
    df["exclude_reason"] = [
        "; ".join(f"{side.upper()}: {why or 'excluded'}" for side, ex, why in zip(SIDES, exs, whys) if ex)
        for exs, whys in zip(
            zip(table_a["exclude"], table_b["exclude"]), zip(table_a["exclude_reason"], table_b["exclude_reason"])
        )
    ]
    return df


def _summaries(df, names: dict) -> list[str]:
    """One Markdown text per row: the change, then each run's values that decide, named."""
    import math

    cols = set(df.columns)
    out = []
    for r in df.to_dict("records"):
        lines = [f"**image id** {r['id']} · **true label** {r['label']}"]
        if "change" in cols:
            lines.append(f"**change, A → B** {r['change'].replace('_', ' ')}")
        for side in SIDES:
            parts = [f"**{side.upper()} ({names[side]})**"]
            if f"prediction_last_{side}" in cols:
                right = "correct" if r[f"correct_last_{side}"] else "wrong"
                parts.append(f"prediction {r[f'prediction_last_{side}']} ({right})")
            parts.append(f"outlier rank {r[f'outlier_rank_last_{side}']}")
            if f"label_quality_last_{side}" in cols:
                parts.append(f"label quality {r[f'label_quality_last_{side}']:.3f}")
            if f"data_map_region_{side}" in cols:
                learned = r[f"learned_step_{side}"]
                when = "never" if math.isnan(learned) else f"step {learned:.0f}"
                parts.append(f"data map {r[f'data_map_region_{side}']} · learned {when}")
            lines.append(" · ".join(parts))
        if r["exclude"]:
            lines.append(f"**excluded** {r['exclude_reason']}")
        out.append("  \n".join(lines))
    return out


# --- the issue groups -------------------------------------------------------------------------


def comparison_issue_groups(df) -> list[IssueGroup]:
    """The non-empty issue groups of a comparison table ``df`` (rows are positions in it), in
    the order of :data:`TITLES`; none without a ``change`` column (a run without probabilities).

    =================  ========  ===============================================================
    group (``key``)    severity  rule, order
    =================  ========  ===============================================================
    ``broken_by_b``    high      ``change == "broken"``; largest drop of label quality first
    ``fixed_by_b``     medium    ``change == "fixed"``; largest gain of label quality first
    ``wrong_in_both``  medium    ``change == "both_wrong"``; lowest label quality in B first
    =================  ========  ===============================================================

    Without label quality, rows keep the table's order.
    """
    import numpy as np

    if "change" not in df.columns:
        return []
    change = df["change"].astype(str).to_numpy()
    names = df.attrs.get("comparison") or {"a": "A", "b": "B"}
    quality = "label_quality_change" in df.columns and "label_quality_last_b" in df.columns
    common = ("change", "prediction_last_a", "prediction_last_b", "label")

    def group(key, severity, which, by, descending, description):
        rows = np.flatnonzero(change == which)
        if quality:
            values = df[by].to_numpy(dtype=np.float64)[rows]
            rows = rows[np.argsort(-values if descending else values, kind="stable")]
        extra = (by,) if quality else ()
        return IssueGroup(key, TITLES[key], severity, common + extra, description, tuple(int(r) for r in rows))

    a, b = names["a"], names["b"]
    groups = [
        group(
            "broken_by_b",
            "high",
            "broken",
            "label_quality_change",
            False,
            f"Right in A ({a}) at its last snapshot, wrong in B ({b}) at its last; "
            "largest drop of label quality first.",
        ),
        group(
            "fixed_by_b",
            "medium",
            "fixed",
            "label_quality_change",
            True,
            f"Wrong in A ({a}) at its last snapshot, right in B ({b}) at its last; "
            "largest gain of label quality first.",
        ),
        group(
            "wrong_in_both",
            "medium",
            "both_wrong",
            "label_quality_last_b",
            False,
            f"Wrong at the last snapshot of both A ({a}) and B ({b}): a label to check, or an image neither "
            "model learns; lowest label quality in B first.",
        ),
    ]
    return [g for g in groups if g.rows]
