"""Live review: the delay from a new snapshot's file to the review table that shows it.

A bare synthetic run (``bench_analyze._make_run``: 10k x 768, clustered embeddings, random
probabilities) is written one snapshot at a time, as a recorder writes it (probabilities, then
the embedding file renamed into ``embeddings/``), while ``start_review(follow=True)`` serves
it. For each new snapshot: the seconds from its rename to the served table that has it,
refreshing as fast as it can (``review --follow`` checks every second, which adds up to one
``REVIEW_POLL``). Goal (issue 22): within 10 s for 10k images on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_analyze import _make_run

TARGET_S = 10.0


def run(quick: bool = False, n: int | None = None, **_) -> list[dict]:
    import spotreview
    from spotreview.defaults import REVIEW_POLL

    n = n or (2000 if quick else 10_000)
    snapshots = 5 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = _make_run(Path(tmp) / "run", n, snapshots)
        held = Path(tmp) / "held"
        shutil.move(run.embeddings_dir, held)
        run.embeddings_dir.mkdir()
        steps = sorted(int(p.name[5:-4]) for p in held.glob("step-*.npy") if not p.name.endswith(".probs.npy"))

        def land(step: int) -> None:  # as write_snapshot does: probabilities first, then the embedding
            for name in (f"step-{step}.probs.npy", f"step-{step}.npy"):
                os.replace(held / name, run.embeddings_dir / name)

        land(steps[0])
        delays = []
        with spotreview.start_review(run, follow=True, open_browser=False, quiet=True) as session:
            for k, step in enumerate(steps[1:], start=2):
                land(step)
                landed = time.perf_counter()
                while session.viewer.df["outlier_rank_trajectory"].iloc[0].shape[1] < k:
                    session.refresh()
                delays.append(time.perf_counter() - landed)
    worst = max(delays)
    return [
        dict(
            benchmark="follow",
            measure=f"s from a new snapshot's file to the served table, {n}x768, snapshots 2..{snapshots} (median)",
            value=float(np.median(delays)),
            unit="s",
            note=f"max {worst:.2f} s (at {snapshots} snapshots); review --follow polls every {REVIEW_POLL:g} s",
        ),
        dict(
            benchmark="follow",
            measure=f"worst delay plus one poll, {n}x768",
            value=worst + REVIEW_POLL,
            unit="s",
            target=f"<= {TARGET_S:g} s",
            met=worst + REVIEW_POLL <= TARGET_S,
        ),
    ]
