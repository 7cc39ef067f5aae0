"""Following a run while it trains: a real `spotreview finetune` process writes the run while
`status --follow` and `review --follow` read it; the writer killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import cli_error

import spotreview
from spotreview.cli import cli
from spotreview.rundir.run import Run

ROOT = Path(__file__).parent.parent
# 23 steps (1438 digits / 64, one epoch), a snapshot every 2: 13 snapshots, about a minute
TINY = ["--eval-size", "30", "--epochs", "1", "--batch-size", "64", "--save-steps", "2", "-q"]
SNAPSHOTS = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 23]


def start_finetune(out: Path) -> subprocess.Popen:
    """`spotreview finetune` in its own process, returned once the run has its first snapshot."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotreview", "finetune", "--out", str(out), *TINY],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not Run(out).embedding_path(0).is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no first snapshot in 120 s"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_status_follow_prints_every_snapshot_until_training_finishes(tmp_path):
    out = tmp_path / "run"
    proc = start_finetune(out)
    result = CliRunner().invoke(cli, ["status", str(out), "--follow", "--timeout", "300"])
    assert proc.wait(timeout=60) == 0
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [int(line.split()[1]) for line in lines if line.startswith("step ")] == SNAPSHOTS
    assert lines[-1] == "training finished: 13 snapshots"
    assert all("most atypical digits-" in line for line in lines[:-1])
    # what it analysed as it went is the analysis of the finished run
    assert spotreview.load_analysis(out).steps.tolist() == SNAPSHOTS


@pytest.mark.slow
def test_follow_ends_when_the_writer_is_killed(tmp_path):
    out = tmp_path / "run"
    proc = start_finetune(out)
    run = Run(out)
    while not run.embedding_path(6).is_file():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    updates = list(spotreview.follow(out, timeout=60, poll=0.2))
    assert updates[-1].state == "stopped"
    seen = [m.step for u in updates for m in u.new]
    assert seen == run.snapshots() and 6 in seen and 23 not in seen  # every snapshot written, none half-read
    result = CliRunner().invoke(cli, ["status", str(out), "--follow", "--timeout", "60"])
    assert result.output.splitlines()[-1].startswith("training stopped unfinished at ")


@pytest.mark.slow
def test_review_follow_serves_each_new_snapshot(tmp_path):
    """The served table's trajectories grow with the run and end with all of its snapshots;
    the delay from a snapshot's file to the served table is printed (not asserted)."""
    out = tmp_path / "run"
    proc = start_finetune(out)
    lengths, delays = [], []
    deadline = time.monotonic() + 300
    with spotreview.start_review(out, follow=True, open_browser=False, quiet=True) as session:
        lengths.append(session.viewer.df["outlier_rank_trajectory"].iloc[0].shape[1])
        while proc.poll() is None or session.source.follower.state == "training":
            assert time.monotonic() < deadline, f"the review still says {session.source.follower.state!r}"
            if session.refresh():
                served = session.viewer.df["outlier_rank_trajectory"].iloc[0].shape[1]
                if served > lengths[-1]:
                    newest = max(Run(out).embeddings_dir.glob("step-*.npy"), key=lambda p: p.stat().st_mtime)
                    delays.append(time.time() - newest.stat().st_mtime)
                lengths.append(served)
            time.sleep(0.2)
        session.refresh()
        lengths.append(session.viewer.df["outlier_rank_trajectory"].iloc[0].shape[1])
    assert proc.returncode == 0
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1] == len(SNAPSHOTS)
    assert session.source.follower.state == "finished"
    print(f"snapshot file to served table: median {np.median(delays):.2f} s, max {max(delays):.2f} s")


def test_follow_refuses_a_bundle_and_waits_for_a_first_snapshot(analysed_run, tmp_path):
    bundle = spotreview.write_bundle(analysed_run, tmp_path / "r.zip")
    assert "drop --follow" in cli_error(CliRunner().invoke(cli, ["review", str(bundle), "--follow", "--no-browser"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    started = time.monotonic()
    result = spotreview.review(empty, follow=True, timeout=1.5, poll=0.2, open_browser=False, quiet=True)
    assert result.url == "" and result.ended == "timeout" and time.monotonic() - started < 10


def test_follow_on_a_run_that_is_not_training_analyses_it_once(synthetic_run):
    """A run without training.json (embedded, or recorded before it existed): one update, then done."""
    updates = list(spotreview.follow(synthetic_run, timeout=30, poll=0.1))
    assert len(updates) == 1 and updates[0].state == "unknown"
    assert [m.step for m in updates[0].new] == synthetic_run.snapshots()
