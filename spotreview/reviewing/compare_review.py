"""Serving a comparison of two runs in Spotlight (``review RUN_A --compare RUN_B``).

:class:`ComparisonSource` is what :mod:`spotreview.reviewing.review` serves: the comparison
table (:mod:`spotreview.reviewing.compare`), rebuilt when either run's exclusions or analysis
change. :func:`comparison_layout` is its default layout and :func:`comparison_dtypes` the
Spotlight dtypes of its own columns; a bundle of a comparison (``bundle RUN_A --compare
RUN_B``) carries the same table and layout.
"""

from __future__ import annotations

from collections.abc import Iterable

from spotreview.reviewing.compare import CHANGES, SIDES
from spotreview.reviewing.layouts import import_spotlight
from spotreview.rundir.run import Run

# Names of the widgets of the comparison layout; the tests find them by these.
CHANGE_PLOT = "change, A → B (counts)"
ISSUES_WIDGET = "issues"


def plot_name(side: str, name: str) -> str:
    """The title of a run's last-snapshot scatterplot: ``A (lr-1e-3): last snapshot (aligned PCA)``."""
    return f"{side.upper()} ({name}): last snapshot (aligned PCA)"


class ComparisonSource:
    """What a review serves for two runs: their comparison table, rebuilt when
    ``exclusions.json`` or the analysis of either changes; images from run A."""

    def __init__(self, run_a: Run, run_b, *, outlier_threshold: int | None = None):
        from spotreview.analysis.store import result_files
        from spotreview.reviewing.compare import check_comparable

        self.run = run_a
        self.other = Run(run_b, run_a.image_set).require()
        check_comparable(self.run, self.other)  # refused before anything is served
        self.name = run_a.label  # what messages name: exclusions made during the review go to a run
        self._threshold = outlier_threshold
        self.watched = tuple(p for r in (run_a, self.other) for p in (r.exclusions, *result_files(r)))
        self.default_layout = None  # built for the table's columns: :meth:`layout`

    def table(self):
        from spotreview.reviewing.compare import comparison_table
        from spotreview.reviewing.table import absolute_images

        df = comparison_table(self.run, self.other, outlier_threshold=self._threshold)
        return absolute_images(df, self.run.root)


def comparison_source(target, compare, *, outlier_threshold: int | None, embeddings: bool, image_set: str | None):
    """The :class:`ComparisonSource` of run ``target`` compared with run ``compare``; a
    ``ReviewError`` for a bundle or ``embeddings``."""
    from pathlib import Path

    from spotreview.errors import ReviewError

    if Path(target).is_file():
        raise ReviewError(f"{target} is a bundle; compare two run directories, then bundle the comparison")
    if embeddings:
        raise ReviewError("a comparison serves no embeddings; drop --embeddings")
    return ComparisonSource(Run(target, image_set).require(), compare, outlier_threshold=outlier_threshold)


def bundle_contents(run: Run, compare, *, outlier_threshold: int | None):
    """``(table, layout, approval file)`` of a bundle: ``run``'s review table, default layout and
    ``approval.json``, or, with ``compare``, the comparison table, :func:`comparison_layout`
    and the comparison's approval (:mod:`spotreview.reviewing.compare_approval`)."""
    from spotreview.reviewing.compare import comparison_table
    from spotreview.reviewing.compare_approval import comparison_dir
    from spotreview.reviewing.layouts import default_layout
    from spotreview.reviewing.table import build_table

    if compare is None:
        df = build_table(run, save=False, outlier_threshold=outlier_threshold)
        return df, default_layout(df.columns), run.approval
    df = comparison_table(run, compare, outlier_threshold=outlier_threshold)
    other = Run(compare, run.image_set)
    return df, comparison_layout(df.columns, df.attrs["comparison"]), comparison_dir(run, other) / "approval.json"


def comparison_dtypes(df) -> dict:
    """Spotlight dtypes of a comparison table's own columns: both runs' predictions as class
    names (every class listed, see ``review._dtypes``), ``change``, and both runs' outlier
    status and data-map region as categories; {} for any other table."""
    from renumics.spotlight import dtypes as sd

    from spotreview.reviewing.compare import is_comparison

    if not is_comparison(df):
        return {}

    from spotreview.analysis.dynamics import REGIONS
    from spotreview.reviewing.table import STATUSES

    classes = {str(name): code for code, name in enumerate(df.attrs.get("class_names") or [])}
    dtype = {}
    for side in SIDES:
        if classes and f"prediction_last_{side}" in df:
            dtype[f"prediction_last_{side}"] = sd.CategoryDType(classes)
        for column, values in (("outlier_status", STATUSES), ("data_map_region", REGIONS)):
            if f"{column}_{side}" in df:
                dtype[f"{column}_{side}"] = sd.CategoryDType(list(values))
    if "change" in df:
        dtype["change"] = sd.CategoryDType(list(CHANGES))
    return dtype


def comparison_layout(columns: Iterable[str] | None = None, names: dict | None = None):
    """The comparison's default layout (a ``renumics.spotlight.layout.nodes.Layout``).

    Top: both runs' last snapshot as scatterplots of their aligned PCA columns, coloured by
    ``change`` (by label without predictions), and an inspector (the image and the summary of
    both runs). Bottom: the Issues widget (broken by B, fixed by B, wrong in both), the table
    with the broken images first, and the change counts with each run's accuracy.
    ``columns``: the table's columns (widgets naming others are left out); ``names``: the
    runs' names for the plot titles (``{"a": ..., "b": ...}``).
    """
    import_spotlight()
    from renumics.spotlight import layout as L
    from renumics.spotlight.layout import lenses

    columns = set(() if columns is None else columns)
    names = names or {"a": "A", "b": "B"}
    colour = "change" if "change" in columns else "label"
    top = [
        L.tab(
            L.scatterplot(plot_name(side, names[side]), f"pca_last_x_{side}", f"pca_last_y_{side}", colour), weight=30
        )
        for side in SIDES
    ]
    views = [lenses.image("image", name="image"), lenses.markdown("summary", name="both runs (what decides)")]
    for view in views:
        view.id = f"lens-{view.columns[0]}"  # a fixed key keeps the JSON stable
    top.append(L.tab(L.inspector("image", views, num_columns=1), weight=40))
    sort = [("change", "ascending"), ("rank_change", "ascending")] if "change" in columns else []
    table = L.table("comparison table", sort_by_columns=sort or [("rank_change", "ascending")])
    counts = []
    if "change" in columns:
        counts.append(L.histogram(CHANGE_PLOT, "change", "label"))
        counts += [
            L.metric(f"accuracy {side.upper()} ({names[side]}), last", "accuracy", ["label", f"prediction_last_{side}"])
            for side in SIDES
        ]
    counts.append(L.histogram("outlier rank change (B - A)", "rank_change", "label"))
    bottom = [L.tab(L.issues(ISSUES_WIDGET), weight=24), L.tab(table, weight=52), L.tab(*counts, weight=24)]
    return L.layout(L.split(*top, weight=58), L.split(*bottom, weight=42))
