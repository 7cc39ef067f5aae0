"""``spotreview status`` and ``analyze``'s table: the 2-D picture's trustworthiness beside the
kNN accuracy, and the snapshots where it is low."""

from __future__ import annotations

import math

from click.testing import CliRunner
from conftest import make_synthetic_run

from spotreview.analysis.analyze import analyze
from spotreview.cli import cli
from spotreview.cli.format import format_table, trust_text
from spotreview.defaults import TRUST_LOW
from spotreview.reviewing.status import run_status


def test_status_carries_and_prints_the_trustworthiness(synthetic_run):
    a = analyze(synthetic_run, quiet=True)
    status = run_status(synthetic_run)
    assert status.first.trustworthiness == a.trustworthiness[0]
    assert status.last.trustworthiness == a.trustworthiness[-1]
    # conftest's step 0 is one blob of all classes: a poor picture; later the classes separate
    low = [int(s) for s, t in zip(a.steps, a.trustworthiness) if t < TRUST_LOW]
    assert status.low_trust == low == [0]
    out = CliRunner().invoke(cli, ["status", str(synthetic_run.root)]).output
    first = next(line for line in out.splitlines() if line.startswith("  first step 0 "))
    assert f"kNN accuracy {a.knn_accuracy[0]:.3f}  trustworthiness {a.trustworthiness[0]:.2f} (low)  " in first
    last = next(line for line in out.splitlines() if line.startswith("  last  step 100 "))
    assert f"trustworthiness {a.trustworthiness[-1]:.2f}  disparity" in last
    assert (
        "  2-D picture: trustworthiness below 0.8 at 1 snapshot of 5 (step 0); "
        "there it misplaces which images are neighbours" in out
    )


def test_analyze_table_has_a_trust_column(synthetic_run):
    a = analyze(synthetic_run, quiet=True)
    rows = format_table(a).splitlines()
    assert rows[0].split()[:5] == ["step", "accuracy", "kNN", "acc", "trust"]
    assert rows[1].split()[3:5] == [f"{a.trustworthiness[0]:.2f}", "(low)"]
    assert rows[-1].split()[3] == f"{a.trustworthiness[-1]:.2f}"


def test_too_few_images_show_na_and_no_low_line(tmp_path):
    run = make_synthetic_run(tmp_path / "tiny", n_per_class=5)  # 15 images: T(10) needs 21
    analyze(run, quiet=True)
    status = run_status(run)
    assert math.isnan(status.first.trustworthiness) and status.low_trust == []
    out = CliRunner().invoke(cli, ["status", str(run.root)]).output
    assert "trustworthiness n/a  disparity" in out and "2-D picture" not in out
    assert trust_text(float("nan")) == "n/a" and trust_text(0.7999) == "0.80 (low)" and trust_text(0.8) == "0.80"


def test_status_without_analysis_has_no_trust(synthetic_run):
    status = run_status(synthetic_run)
    assert status.first is None and status.low_trust == []
