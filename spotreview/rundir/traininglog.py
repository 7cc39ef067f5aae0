"""The training log of a run: ``log.csv`` (one row per Trainer log), ``snapshots.csv``
(the step and epoch of every recorded snapshot) and ``training.json`` (whether training is
going on, and who writes it: what a live review follows).

``log.csv`` is written by :class:`spotreview.training.recorder.EmbeddingRecorder` from the Trainer's
``on_log``, or, for checkpoints trained elsewhere, from the newest ``trainer_state.json``'s
``log_history`` (:func:`log_from_trainer_state`, called by ``spotreview embed``). Both files
are rewritten whole and atomically: they are small.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path

from spotreview.errors import RunDirError
from spotreview.rundir.atomic import write_json, write_text
from spotreview.rundir.run import Run, read_csv_columns

logger = logging.getLogger(__name__)

FIRST_COLUMNS = ("step", "epoch", "loss", "learning_rate")


def log_row(step: int, epoch: float | None, logs: dict) -> dict:
    """One ``log.csv`` row: step, epoch, loss, learning_rate, then every other number logged."""
    row = {
        "step": int(step),
        "epoch": math.nan if epoch is None else float(epoch),
        "loss": math.nan,
        "learning_rate": math.nan,
    }
    for key, value in (logs or {}).items():
        if key in ("step", "epoch"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
            row[key] = float(value.item())
    return row


def write_log(run: Run, rows: list[dict]) -> None:
    """``log.csv`` from ``rows`` (the union of their columns, the first four in a fixed order)."""
    import pandas as pd

    write_text(run.log_csv, pd.DataFrame(rows).to_csv(index=False))


def trainer_state_log(run: Run) -> tuple[list[dict], Path | None, str]:
    """``(rows, state, why)``: ``log.csv`` rows from the ``log_history`` of the newest checkpoint's
    ``trainer_state.json`` (``state``, None when there is none); ``why`` says why there are no rows."""
    states = [p / "trainer_state.json" for _, p in reversed(run.checkpoints())]
    state = next((s for s in states if s.is_file()), None)
    if state is None:
        return [], None, f"{run.log_csv} is missing"
    try:
        history = json.loads(state.read_text(encoding="utf-8")).get("log_history") or []
    except (OSError, ValueError, AttributeError) as e:
        return [], state, f"{run.log_csv} is missing and {state} cannot be read ({str(e).splitlines()[0]})"
    rows = [log_row(h.get("step", 0), h.get("epoch"), h) for h in history if isinstance(h, dict)]
    return rows, state, "" if rows else f"{run.log_csv} is missing and {state} has no logged steps"


def log_from_trainer_state(run: Run) -> bool:
    """Write ``log.csv`` from :func:`trainer_state_log` when the run has no ``log.csv``.
    Returns whether it wrote one."""
    if run.log_csv.is_file():
        return False
    rows, state, why = trainer_state_log(run)
    if not rows:
        if state is not None:
            logger.warning("%s; no log.csv written", why)
        return False
    write_log(run, rows)
    logger.info("wrote %s from %s (%d log entries)", run.log_csv, state, len(rows))
    return True


def record_snapshot(run: Run, step: int, epoch: float | None) -> None:
    """Add (or replace) the row of ``step`` in ``snapshots.csv``: step,epoch."""
    rows = read_snapshot_epochs(run)
    rows[int(step)] = math.nan if epoch is None else float(epoch)
    lines = ["step,epoch"] + [f"{s},{'' if math.isnan(e) else repr(e)}" for s, e in sorted(rows.items())]
    write_text(run.snapshots_csv, "\n".join(lines) + "\n")


def read_snapshot_epochs(run: Run) -> dict[int, float]:
    """``{step: epoch}`` from ``snapshots.csv`` (NaN where the epoch is unknown); {} without one."""
    path = Path(run.snapshots_csv)
    if not path.is_file():
        return {}
    fix = "delete it (the epochs then come from log.csv) or re-create the run"
    try:
        cells = read_csv_columns(path)
    except ValueError as e:
        raise RunDirError(f"{path} cannot be read as CSV ({e}); {fix}") from None
    if "step" not in cells:
        raise RunDirError(f"{path} has no step column; {fix}")
    epochs = cells.get("epoch") or [""] * len(cells["step"])
    out = {}
    for step, epoch in zip(cells["step"], epochs):
        try:
            if step.strip():
                out[int(step)] = float(epoch) if epoch.strip() else math.nan
        except ValueError:
            raise RunDirError(f"{path} has a step or epoch that is not a number ({step!r}, {epoch!r}); {fix}") from None
    return out


def unfinished(run: Run) -> bool:
    """Whether the run's manifest says its training has not finished (``"finished": false``)."""
    try:
        return run.manifest.is_file() and run.read_manifest().get("finished") is False
    except ValueError:
        return False


def warn_if_unfinished(run: Run, doing: str) -> None:
    """Log a warning line when ``doing`` (approve, export) a run whose training has not finished."""
    if unfinished(run):
        logger.warning(
            "%s %s although its training has not finished; re-run the same `spotreview finetune` command to resume it",
            doing,
            run.root,
        )


def write_training_state(run: Run, state: str, *, step: int | None = None, max_steps: int | None = None) -> None:
    """``training.json``: ``state`` ("training" or "finished"), the step reached, the planned
    last step, and the writing process (pid, host), so a follower can tell a run that is still
    being written from one whose writer died."""
    write_json(
        run.root / "training.json",
        {
            "state": state,
            "step": step,
            "max_steps": max_steps,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": time.time(),
        },
    )


def training_state(run: Run) -> str:
    """Where the training of ``run`` stands: "training" (its writer is alive), "finished",
    "stopped" (``training.json`` says training, but its process on this host is gone), or
    "unknown" (no ``training.json``: recorded before it existed, or embedded from checkpoints;
    a writer on another host is taken as alive)."""
    try:
        record = json.loads((run.root / "training.json").read_text(encoding="utf-8"))
        state, pid, host = record["state"], int(record["pid"]), record["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
    if state != "training":
        return "finished" if state == "finished" else "unknown"
    if host != socket.gethostname():
        return "training"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stopped"
    except PermissionError:  # alive, another user's
        pass
    return "training"
