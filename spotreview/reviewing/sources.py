"""What a review serves: a run's review table (:class:`RunSource`), a run that is still
training (:class:`LiveRunSource`), a bundle or a comparison (:func:`review_source` picks), and
the Spotlight dtypes and issues of a served table."""

from __future__ import annotations

import logging
from pathlib import Path

from spotreview.analysis.dynamics import REGIONS
from spotreview.analysis.store import result_files
from spotreview.errors import ReviewError
from spotreview.reviewing.compare import comparison_issue_groups, is_comparison
from spotreview.reviewing.compare_review import comparison_dtypes, comparison_source
from spotreview.reviewing.follow import Follower
from spotreview.reviewing.issues import issue_groups
from spotreview.reviewing.table import (
    CATEGORY_COLUMNS,
    EMBEDDING_COLUMN,
    STATUSES,
    TRAJECTORY_COLUMNS,
    absolute_images,
    build_table,
)
from spotreview.rundir.run import Run

logger = logging.getLogger(__name__)


def spotlight_dtypes(df) -> dict:
    """Spotlight dtypes of the review table's columns.

    Class-name columns get an explicit ``CategoryDType`` with every class name: Spotlight
    1.8.2 infers ``categories: None`` for numeric-looking names ("0".."9"), which leaves
    the cells empty and the points grey.
    """
    from renumics.spotlight import dtypes as sd

    names = df.attrs.get("class_names") or sorted({str(v) for c in CATEGORY_COLUMNS if c in df for v in df[c]})
    classes = {str(name): code for code, name in enumerate(names)}
    dtype = {"image": sd.image_dtype}
    dtype.update({c: sd.CategoryDType(classes) for c in CATEGORY_COLUMNS if c in df})
    if "outlier_status" in df:
        dtype["outlier_status"] = sd.CategoryDType(list(STATUSES))
    if "data_map_region" in df:
        dtype["data_map_region"] = sd.CategoryDType(list(REGIONS))
    for col, what in zip(TRAJECTORY_COLUMNS, ("outlier score", "outlier rank")):
        if col in df:
            dtype[col] = sd.Sequence1DDType("training step", what)
    if EMBEDDING_COLUMN in df:
        dtype[EMBEDDING_COLUMN] = sd.EmbeddingDType(len(df[EMBEDDING_COLUMN].iloc[0]))
    dtype.update(comparison_dtypes(df))  # none for a single run's table
    return dtype


def spotlight_issues(df) -> list:
    """The Spotlight ``DataIssue`` of every issue group of the served table ``df`` (rows are
    positions in it), see :mod:`spotreview.reviewing.issues`. Never empty for a review
    table: its outlier-threshold rows at the last snapshot are persistent or emerging
    outliers (Spotlight keeps the previous issues when given none)."""
    from renumics.spotlight.analysis.typing import DataIssue

    groups = comparison_issue_groups(df) if is_comparison(df) else issue_groups(df)
    return [
        DataIssue(
            title=g.title, rows=list(g.rows), severity=g.severity, columns=list(g.columns), description=g.description
        )
        for g in groups
    ]


class RunSource:
    """What a review serves from a run directory: its review table, rebuilt when
    ``exclusions.json`` or the analysis changes, images from the run."""

    def __init__(self, run: Run, *, outlier_threshold: int | None = None, embeddings: bool = False):
        self.run, self.name = run, run.label
        self._threshold, self._embeddings = outlier_threshold, embeddings
        self.watched = (run.exclusions, *result_files(run))
        self.default_layout = None

    def table(self):
        df = build_table(self.run, outlier_threshold=self._threshold, embeddings=self._embeddings)
        return absolute_images(df, self.run.root)


class LiveRunSource(RunSource):
    """A run still being written (``review --follow``): every new snapshot is analysed (only
    what changed: :class:`spotreview.reviewing.follow.Follower`) before the table is rebuilt."""

    def __init__(self, run: Run, *, quiet: bool = False, **options):
        super().__init__(run, **options)
        self.follower = Follower(run)
        self.quiet = quiet
        # a new snapshot renames its file into embeddings/, which changes the folder's mtime
        self.watched = (*self.watched, run.embeddings_dir, run.root / "training.json")

    def table(self):
        update = self.follower.update()
        if update is not None and not self.quiet:
            steps = ", ".join(str(m.step) for m in update.new) or "none"
            logger.info("%s: %d snapshots (new: %s); training %s", self.name, update.snapshots, steps, update.state)
        # the analysis just made (not loaded and checked again); review.parquet once training is done
        df = build_table(
            self.run,
            analysis=self.follower.analysis,
            save=self.follower.done,
            outlier_threshold=self._threshold,
            embeddings=self._embeddings,
        )
        return absolute_images(df, self.run.root)


def review_source(
    target, *, outlier_threshold, embeddings, image_set, follow: bool = False, quiet: bool = False, compare=None
):
    """A run directory (seen from ``image_set``), a review bundle (``.zip``, see
    :mod:`spotreview.reviewing.bundle`), or a run compared with the run ``compare``."""
    if compare is not None:
        if follow:
            raise ReviewError("a comparison is of two runs as they are; drop --follow (or --compare)")
        return comparison_source(
            target, compare, outlier_threshold=outlier_threshold, embeddings=embeddings, image_set=image_set
        )
    if Path(target).is_file():
        from spotreview.reviewing.bundle import BundleSource

        if embeddings:
            raise ReviewError(f"{target} is a bundle, which holds no embeddings; drop --embeddings")
        if image_set is not None:
            raise ReviewError(f"{target} is a bundle, which holds the image set it was made from; drop --set")
        if follow:
            raise ReviewError(f"{target} is a bundle, which never changes; drop --follow")
        return BundleSource(target)
    run = Run(target, image_set).require()
    if follow:
        return LiveRunSource(run, outlier_threshold=outlier_threshold, embeddings=embeddings, quiet=quiet)
    return RunSource(run, outlier_threshold=outlier_threshold, embeddings=embeddings)
