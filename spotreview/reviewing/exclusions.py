"""Reviewer exclusions: evaluation images marked as excluded, on a run or on a review bundle.

Spotlight serves tables read-only, so exclusions are made with :func:`exclude` (``spotreview
exclude``) from ids copied out of Spotlight. On a run they go to ``exclusions.json``
(:mod:`spotreview.rundir.exclusions`); export skips them on the leaderboard and the approval
digest covers them. On a bundle they go to its decisions file beside the zip
(:mod:`spotreview.reviewing.bundle`), which ``exclude(run, from_file=...)`` applies to the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spotreview.errors import ReviewError
from spotreview.reviewing.bundle import (
    BundleSource,
    decisions_and_set,
    decisions_path,
    read_decisions,
    write_decisions,
)
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.exclusions import change_exclusions
from spotreview.rundir.run import Run


@dataclass(frozen=True)
class Excluded:
    """What :func:`exclude` left behind."""

    where: Path  # the run directory (its train/ for the training set), or the bundle's decisions file
    exclusions: dict[str, str]  # {id: reason} now in force there
    bundle: bool = False  # the target was a review bundle


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def unknown_ids(run: Run, ids: Iterable[str]) -> list[str]:
    """The ``ids`` that are not in the run's evaluation set (``eval.csv``), in order."""
    known = set(read_eval_columns(run, paths=False)["id"])
    return [i for i in ids if i not in known]


def exclude(
    target: str | os.PathLike,
    ids: Iterable[str] = (),
    *,
    reason: str | None = None,
    clear: bool = False,
    from_file: str | os.PathLike | None = None,
) -> Excluded:
    """Mark evaluation images as excluded by the reviewer, on a run or on a review bundle.

    ``target``: a run directory (the exclusions go to its ``exclusions.json``) or a bundle
    ``.zip`` (they go to ``REVIEW.decisions.json`` beside it; the bundle never changes).
    ``ids`` must be ids of the evaluation set; ``reason`` is recorded with them (``""`` when
    none). With ``clear``, the given ids are removed instead, or every exclusion when ``ids``
    is empty. ``from_file``: a bundle's decisions file, applied to the run ``target`` (every
    id checked before any is applied; no ``ids`` or ``clear`` with it). Returns where the
    exclusions are now and what they are; a one-line ``ReviewError`` for anything else.
    """
    ids = list(dict.fromkeys(str(i) for i in ids))
    if from_file is not None and (ids or clear):
        raise ReviewError("a decisions file (--from) takes no ids and no --clear")
    if Path(target).is_file():
        if from_file is not None:
            raise ReviewError(f"{target} is a bundle; apply its decisions file to the run it was made from")
        return Excluded(decisions_path(target), _exclude_in_bundle(target, ids, reason, clear), bundle=True)
    run = Run(target).require()
    if from_file is not None:
        run, decided = _decisions_for(run, Path(from_file))
        return Excluded(run.set_dir, _apply_decisions(run, Path(from_file), decided))
    return Excluded(run.set_dir, _exclude_in_run(run, ids, reason, clear))


def _exclude_in_run(run: Run, ids: list[str], reason: str | None, clear: bool) -> dict[str, str]:
    if not ids and not clear:
        raise ReviewError(
            "give at least one image id to exclude (ids are in the review table's `id` column), "
            "or --clear to remove all exclusions"
        )
    unknown = unknown_ids(run, ids)
    if unknown:
        raise ReviewError(
            f"{len(unknown)} unknown image id(s) for {run.label}: {_few(unknown)}; "
            f"use ids from the review table's `id` column (or {run.eval_csv})"
        )
    if clear:
        return change_exclusions(run, remove=ids, clear=not ids)
    return change_exclusions(run, add={i: reason or "" for i in ids})


def _exclude_in_bundle(bundle, ids: list[str], reason: str | None, clear: bool) -> dict[str, str]:
    source = BundleSource(bundle)
    if not ids and not clear:
        raise ReviewError("give at least one image id to exclude, or --clear to remove all decisions")
    unknown = [i for i in ids if i not in source.ids]
    if unknown:
        raise ReviewError(f"{len(unknown)} unknown image id(s) for {bundle}: {', '.join(unknown[:5])}")
    current = read_decisions(bundle)
    if clear:
        current = {} if not ids else {k: v for k, v in current.items() if k not in ids}
    else:
        current.update({i: reason or "" for i in ids})
    write_decisions(source, current)
    return current


def _decisions_for(run: Run, path: Path) -> tuple[Run, dict[str, str]]:
    """The view of ``run`` a decisions file belongs to (the set its bundle was made from), and its exclusions."""
    if not path.is_file():
        raise ReviewError(f"decisions file {path} not found")
    decided, image_set = decisions_and_set(path)
    return run.for_set(image_set).require(), decided


def _apply_decisions(run: Run, path: Path, decided: dict[str, str]) -> dict[str, str]:
    unknown = unknown_ids(run, decided)
    if unknown:
        raise ReviewError(
            f"{path} names {len(unknown)} image id(s) {run.label} does not have "
            f"(e.g. {', '.join(unknown[:3])}); was the bundle made from another run?"
        )
    return change_exclusions(run, add=decided)
