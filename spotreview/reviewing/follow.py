"""Following a run while it trains: analyse each new snapshot as it lands (``review --follow``,
``status --follow``).

A run being written by ``spotreview finetune`` or a Trainer with ``EmbeddingRecorder`` gains
``embeddings/step-STEP.npy`` files one by one, each written atomically (a snapshot exists
once its file does), and says in ``training.json`` whether training goes on and which process
writes it (:func:`spotreview.rundir.traininglog.training_state`). A :class:`Follower` only
reads the writer's files and writes the analysis: it takes no lock the writer waits for, and
:func:`spotreview.analysis.analyze.analyze` recomputes only the new snapshots (and the
alignment, and the dynamics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from spotreview.analysis.analyze import analyze
from spotreview.analysis.store import Analysis
from spotreview.errors import ReviewError
from spotreview.reviewing.status import SnapshotMetrics, snapshot_metrics
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import training_state

logger = logging.getLogger(__name__)

#: What a followed run's training can be: still going, finished, stopped without finishing
#: (its writer died), or unknown (the run says nothing: recorded before training.json
#: existed, or embedded from checkpoints; it is taken as done).
DONE_STATES = ("finished", "stopped", "unknown")


@dataclass(frozen=True)
class FollowUpdate:
    """What changed in a followed run: its new snapshots (analysed) and the training's state."""

    state: str  # "training", "finished", "stopped" or "unknown"
    new: list[SnapshotMetrics]  # the snapshots analysed since the last update, in step order
    snapshots: int  # snapshots analysed in all


class Follower:
    """Keeps a run's analysis up to date with its snapshots, one :meth:`update` at a time."""

    def __init__(self, run, **analyze_options):
        self.run = Run(run)
        self.state = "training"
        self.analysis: Analysis | None = None
        self._options = {**analyze_options, "quiet": True}

    def update(self) -> FollowUpdate | None:
        """Analyse the snapshots that appeared since the last call; None when nothing changed
        (no new snapshot, the same state). The state is read before the snapshots, so a run
        seen finished has had its last snapshot analysed."""
        state = training_state(self.run)
        done = [] if self.analysis is None else self.analysis.steps.tolist()
        new_steps = [s for s in self.run.snapshots() if s not in done]
        if not new_steps and state == self.state:
            return None
        new = []
        if new_steps and self.run.eval_csv.is_file():
            self.analysis = analyze(self.run, **self._options)
            steps = self.analysis.steps.tolist()
            new = [snapshot_metrics(self.analysis, steps.index(s)) for s in new_steps if s in steps]
        self.state = state
        return FollowUpdate(state, new, 0 if self.analysis is None else len(self.analysis.steps))

    @property
    def done(self) -> bool:
        """Nothing more will come: training finished or stopped, or the run says nothing about
        training (no ``training.json``) and has been analysed; such a run still being set up
        (no snapshot yet) is waited for."""
        return self.state in ("finished", "stopped") or (self.state == "unknown" and self.analysis is not None)


def follow(
    run, *, poll: float = 1.0, timeout: float | None = None, stop: threading.Event | None = None, **analyze_options
) -> Iterator[FollowUpdate]:
    """Yield a :class:`FollowUpdate` whenever ``run`` gains snapshots or its training changes
    state, until its training is done (``finished``, ``stopped``: the writer died, or
    ``unknown``) and every snapshot is analysed, ``timeout`` seconds pass or ``stop`` is set.
    Checks every ``poll`` seconds. ``analyze_options`` go to ``analyze`` (align, top_k, ...)."""
    follower = Follower(Run(run).require(), **analyze_options)
    stop = stop or threading.Event()
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        update = follower.update()
        if update is not None:
            yield update
        if follower.done and update is None:
            return
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            return
        if stop.wait(poll if left is None else min(poll, left)):
            return


def wait_for_snapshots(run: Run, *, timeout: float | None, poll: float, stop: threading.Event) -> bool:
    """Wait until ``run`` has an evaluation set and a snapshot (True), or ``timeout`` / ``stop``
    (False). A ``ReviewError`` when its training is over without any."""
    end = None if timeout is None else time.monotonic() + timeout
    while not (run.eval_csv.is_file() and run.snapshots()):
        if training_state(run) in ("finished", "stopped"):
            raise ReviewError(f"{run.root} has no snapshot and its training is over; nothing to follow")
        left = None if end is None else end - time.monotonic()
        if (left is not None and left <= 0) or stop.wait(poll if left is None else min(poll, left)):
            return False
    return True
