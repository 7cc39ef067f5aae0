"""``exclusions.json``: the evaluation images a reviewer excluded, ``{id: reason}``.

The one module that reads and writes the file. Changes are a read-modify-write under the run
lock (:meth:`Run.lock`), written atomically, so concurrent ``spotreview exclude`` commands
never lose each other's ids. Which ids may be excluded is the caller's business
(:func:`spotreview.exclude` checks them against ``eval.csv``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from spotreview.rundir.atomic import write_json
from spotreview.rundir.run import Run


def _fix(run: Run) -> str:
    return f"fix it, or clear all exclusions with `spotreview exclude {run.root} --clear`"


def read_exclusions(run) -> dict[str, str]:
    """``{id: reason}`` from ``exclusions.json`` ({} when there is none); a ``RunDirError``
    naming the file when it is not a JSON object of strings."""
    run = Run(run)
    if not run.exclusions.is_file():
        return {}
    excl = run._read_json(run.exclusions, _fix(run))
    if not all(isinstance(v, str) for v in excl.values()):
        raise run._bad(run.exclusions, "has reasons that are not strings", _fix(run))
    return excl


def change_exclusions(
    run,
    *,
    add: Mapping[str, str] | None = None,
    remove: Iterable[str] = (),
    clear: bool = False,
) -> dict[str, str]:
    """Drop ``remove`` (every exclusion with ``clear``), then add ``add`` (``{id: reason}``),
    under the run lock; returns the exclusions now on disk.

    ``clear`` does not read the file, so it also repairs a corrupt ``exclusions.json``.
    """
    run = Run(run)
    with run.lock():
        current = {} if clear else read_exclusions(run)
        for image_id in remove:
            current.pop(image_id, None)
        current.update(add or {})
        write_json(run.exclusions, current)
    return current
