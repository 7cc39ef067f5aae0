"""Reviewer exclusions: evaluation images marked as excluded, in ``exclusions.json``.

Spotlight 1.8 serves tables read-only, so exclusions are made with ``exclude(run, ids)``
(``spotreview exclude``) from ids copied out of Spotlight; export skips them on the
leaderboard and the approval digest covers them.
"""

from __future__ import annotations

from collections.abc import Iterable

from spotreview.errors import ReviewError
from spotreview.rundir.atomic import write_json
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.run import Run


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def unknown_ids(run: Run, ids: Iterable[str]) -> list[str]:
    """The ``ids`` that are not in the run's evaluation set (``eval.csv``), in order."""
    known = set(read_eval_columns(run, paths=False)["id"])
    return [i for i in ids if i not in known]


def exclude(run, ids: Iterable[str], *, reason: str | None = None, clear: bool = False) -> dict[str, str]:
    """Mark evaluation images as excluded by the reviewer, in ``exclusions.json``.

    ``ids`` must be ids of the evaluation set (``eval.csv``). With ``clear``, remove the
    given ids from the exclusions instead, or all exclusions when ``ids`` is empty.
    Returns the exclusions now on disk, ``{id: reason}`` (reason ``""`` when none given).
    """
    run = Run(run).require()
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids and not clear:
        raise ReviewError(
            "give at least one image id to exclude (ids are in the review table's `id` column), "
            "or --clear to remove all exclusions"
        )
    unknown = unknown_ids(run, ids)
    if unknown:
        raise ReviewError(
            f"{len(unknown)} unknown image id(s) for {run.root}: {_few(unknown)}; "
            f"use ids from the review table's `id` column (or {run.eval_csv})"
        )
    with run.lock():  # concurrent `exclude` commands must not lose each other's ids
        # Clearing everything needs no reading, so it also repairs a corrupt exclusions.json.
        current = {} if clear and not ids else run.read_exclusions()
        if clear:
            current = {k: v for k, v in current.items() if k not in ids}
        else:
            current.update({i: reason or "" for i in ids})
        write_json(run.exclusions, current)
    return current
