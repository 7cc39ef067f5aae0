"""Training dynamics (analysis/dynamics.py): hand-computed values, analyze end to end, the review
table and the bundle, runs without probabilities, the data-map thresholds."""

from __future__ import annotations

import json
import logging
import math
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_close_float32, make_synthetic_run

from spotreview.analysis import dynamics as dyn
from spotreview.analysis.analyze import analyze
from spotreview.analysis.store import analysis_digest, load_analysis, read_step
from spotreview.cli import cli
from spotreview.errors import AnalysisError

# --- a tiny hand-made example: 3 snapshots x 4 images x 3 classes -------------------------

STEPS = np.array([0, 10, 30])
LABELS = np.array([0, 1, 2, 0])
PROBS = np.array(
    [
        # img 0 (label 0): always right, rising: easy
        [[0.8, 0.1, 0.1], [0.9, 0.05, 0.05], [1.0, 0.0, 0.0]],
        # img 1 (label 1): right, wrong, right: one forgetting event, learned at step 30, ambiguous
        [[0.2, 0.6, 0.2], [0.9, 0.0, 0.1], [0.0, 1.0, 0.0]],
        # img 2 (label 2): never right: hard, never learned
        [[0.4, 0.3, 0.3], [0.5, 0.3, 0.2], [0.6, 0.2, 0.2]],
        # img 3 (label 0): wrong, wrong, right on a tie (argmax takes the first): learned late, hard
        [[0.1, 0.8, 0.1], [0.3, 0.4, 0.3], [0.5, 0.5, 0.0]],
    ],
    dtype=np.float32,
).transpose(1, 0, 2)  # (S, n, C)
FIRST = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
LAST = np.array([[2, 1], [2, 3], [1, 0], [2, 0]])

EXPECTED = {
    "confidence_mean": [0.9, 1.6 / 3, 0.7 / 3, 0.3],
    "confidence_std": [
        math.sqrt(0.02 / 3),
        math.sqrt(((0.6 - 1.6 / 3) ** 2 + (1.6 / 3) ** 2 + (1 - 1.6 / 3) ** 2) / 3),
        math.sqrt(((0.3 - 0.7 / 3) ** 2 + 2 * (0.2 - 0.7 / 3) ** 2) / 3),
        math.sqrt(0.08 / 3),
    ],
    "correct_fraction": [1.0, 2 / 3, 0.0, 1 / 3],
    "forgetting_events": [0, 1, 0, 0],
    "learned_step": [0.0, 30.0, math.nan, 30.0],
    "margin_mean": [(0.7 + 0.85 + 1.0) / 3, (0.4 - 0.9 + 1.0) / 3, (-0.1 - 0.3 - 0.4) / 3, (-0.7 - 0.1 + 0.0) / 3],
    "data_map_region": ["easy", "ambiguous", "hard", "hard"],
    "neighbour_change": [0.0, 2 / 3, 0.0, 2 / 3],
}


def test_hand_computed_columns():
    out = dyn.training_dynamics(PROBS, LABELS, STEPS, FIRST, LAST)
    assert list(out) == list(dyn.COLUMNS)
    for name in ("confidence_mean", "confidence_std", "correct_fraction", "margin_mean", "neighbour_change"):
        assert out[name].dtype == np.float64, name
        assert_close_float32(out[name], EXPECTED[name])
    assert out["forgetting_events"].dtype == np.int64
    assert out["forgetting_events"].tolist() == EXPECTED["forgetting_events"]
    assert out["learned_step"].dtype == np.float64
    np.testing.assert_array_equal(out["learned_step"], EXPECTED["learned_step"])  # NaN where never learned
    assert out["data_map_region"].dtype == object and out["data_map_region"].tolist() == EXPECTED["data_map_region"]


def test_learned_step_and_forgetting_over_longer_runs():
    """Learned = the step after the last wrong snapshot; forgetting counts every right -> wrong."""
    correct = np.array([[1, 0, 1, 1, 0], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool).T
    steps = np.array([0, 5, 10, 20, 100])
    ones = np.ones(correct.shape)
    out = dyn.probability_dynamics(ones, ones, correct, steps)
    assert out["forgetting_events"].tolist() == [2, 2, 0, 0]
    np.testing.assert_array_equal(out["learned_step"], [math.nan, 100.0, math.nan, 0.0])
    assert out["correct_fraction"].tolist() == [0.6, 0.6, 0.0, 1.0]


def test_thresholds_draw_the_regions():
    mean, std = np.array(EXPECTED["confidence_mean"]), np.array(EXPECTED["confidence_std"])
    # img 3's std is 0.163: ambiguous from a variability threshold of 0.15; img 2's mean is
    # 0.233: easy from a confidence threshold of 0.2
    assert dyn.data_map_region(mean, std, variability_threshold=0.15).tolist() == [
        "easy",
        "ambiguous",
        "hard",
        "ambiguous",
    ]
    assert dyn.data_map_region(mean, std, confidence_threshold=0.2).tolist() == ["easy", "ambiguous", "easy", "easy"]
    # the rule's edges: std == threshold is ambiguous, mean == threshold is easy
    assert dyn.data_map_region(np.array([0.5, 0.4]), np.array([0.1, 0.3])).tolist() == ["easy", "ambiguous"]


def test_neighbour_change_is_one_minus_jaccard():
    first = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3]])
    last = np.array([[3, 2, 1], [7, 8, 9], [3, 4, 5]])
    np.testing.assert_array_equal(dyn.neighbour_change(first, last), [0.0, 1.0, 1 - 1 / 5])


def test_label_terms_in_blocks(monkeypatch):
    """Rows are processed in blocks (bounded memory for many classes): the same numbers."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), 20).astype(np.float32)
    labels = rng.integers(0, 5, 20)
    whole = dyn.label_terms(probs, labels)
    monkeypatch.setattr(dyn, "_ROWS", 3)
    for a, b in zip(whole, dyn.label_terms(probs, labels)):
        np.testing.assert_array_equal(a, b)
    other = probs.astype(np.float64).copy()
    other[np.arange(20), labels] = -1
    np.testing.assert_array_equal(whole[0], probs[np.arange(20), labels])
    np.testing.assert_array_equal(whole[1], whole[0] - other.max(1))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(probs=PROBS[:2]), "probabilities must be (S, n, C) for 3 steps"),
        (dict(steps=np.array([0, 30, 10])), "steps must ascend"),
        (dict(labels=np.array([0, 1, 3, 0])), "probabilities have 3 classes but the labels go from 0 to 3"),
        (dict(probs=np.where(PROBS == 1.0, np.nan, PROBS)), "probabilities have NaN/inf values"),
        (dict(neighbours_last=LAST[:, :1]), "neighbour lists must be two (n, k) arrays alike"),
        (dict(neighbours_first=np.array([[1, 1], [0, 2], [0, 1], [0, 1]])), "(first) repeat an index"),
        (dict(neighbours_last=LAST.astype(float)), "neighbour indices (last) must be integers"),
        (dict(confidence_threshold=1.5), "confidence_threshold must be in [0, 1], got 1.5"),
        (dict(variability_threshold=True), "variability_threshold must be a number in [0, 1], got True"),
    ],
)
def test_bad_inputs_are_one_line_errors(change, message):
    args = dict(probs=PROBS, labels=LABELS, steps=STEPS, neighbours_first=FIRST, neighbours_last=LAST) | change
    with pytest.raises(AnalysisError) as e:
        dyn.training_dynamics(**args)
    assert message in str(e.value) and "\n" not in str(e.value)


# --- analyze end to end -------------------------------------------------------------------


def test_analyze_stores_what_the_module_computes(analysed_run):
    from spotreview.analysis.outliers import cleanlab_neighbors

    a = load_analysis(analysed_run)
    steps = a.steps.tolist()
    probs = np.stack([np.load(analysed_run.probs_path(s)) for s in steps])
    first, last = (read_step(analysed_run, s)["neighbours"] for s in (steps[0], steps[-1]))
    for s, stored in ((steps[0], first), (steps[-1], last)):  # the neighbours of cleanlab's score
        x = np.load(analysed_run.embedding_path(s))
        np.testing.assert_array_equal(stored, cleanlab_neighbors(x, 10)[1])
    expected = dyn.training_dynamics(probs, a.labels, a.steps, first, last)
    assert list(a.dynamics.columns) == list(dyn.COLUMNS)
    for name, values in expected.items():
        np.testing.assert_array_equal(a.dynamics.columns[name], values, err_msg=name)
    assert (a.dynamics.confidence_threshold, a.dynamics.variability_threshold) == (0.5, 0.3)
    # conftest's classes drift apart, so most images are learned and none is forgotten for good
    assert a.dynamics.columns["correct_fraction"].mean() > 0.5
    summary = json.loads((analysed_run.analysis_dir / "summary.json").read_text())
    regions = summary["data_map"]["regions"]
    assert summary["data_map"]["confidence_threshold"] == 0.5 and sum(regions.values()) == 36


def test_review_table_and_bundle_carry_the_columns(analysed_run, tmp_path):
    from spotreview.reviewing.bundle import write_bundle
    from spotreview.reviewing.sources import spotlight_dtypes
    from spotreview.reviewing.table import build_table, read_table

    a = load_analysis(analysed_run)
    df = build_table(analysed_run)
    for name in dyn.COLUMNS:
        np.testing.assert_array_equal(df[name].to_numpy(), a.dynamics.columns[name], err_msg=name)
    assert df["forgetting_events"].dtype == np.int64 and df["learned_step"].dtype == np.float64
    assert "**data map** " in df["summary"][0] and "**learned** " in df["summary"][0]
    category = spotlight_dtypes(df)["data_map_region"]
    assert category.categories == {"easy": 0, "ambiguous": 1, "hard": 2}  # explicit, never None
    back = read_table(analysed_run.review_table)
    for name in dyn.COLUMNS:
        np.testing.assert_array_equal(back[name].to_numpy(), df[name].to_numpy(), err_msg=name)

    out = write_bundle(analysed_run, tmp_path / "review.zip")
    with zipfile.ZipFile(out) as z:
        z.extract("review.parquet", tmp_path / "bundle")
        summary = json.loads(z.read("summary.json"))
    bundled = read_table(tmp_path / "bundle" / "review.parquet")
    assert set(dyn.COLUMNS) <= set(bundled.columns) and summary["data_map"]["variability_threshold"] == 0.3


@pytest.mark.parametrize("missing", ["all", "one"])
def test_without_probabilities_only_neighbour_change(tmp_path, caplog, missing):
    from spotreview.reviewing.table import build_table

    run = make_synthetic_run(tmp_path / "run")
    for step in run.snapshots() if missing == "all" else [20]:
        run.probs_path(step).unlink()
    with caplog.at_level(logging.INFO, logger="spotreview"):
        a = analyze(run, quiet=False)
    notes = [r.getMessage() for r in caplog.records if "training dynamics" in r.getMessage()]
    assert len(notes) == 1 and "need probabilities" in notes[0]
    assert notes[0].endswith("missing at step(s) " + ("0, 5, 10, 20, 100" if missing == "all" else "20"))
    assert list(a.dynamics.columns) == ["neighbour_change"]
    assert list(load_analysis(run).dynamics.columns) == ["neighbour_change"]
    with np.load(run.analysis_dir / "dynamics.npz") as f:
        assert not set(dyn.PROBABILITY_COLUMNS) & set(f.files)
    df = build_table(run, save=False)
    assert "neighbour_change" in df and not set(dyn.PROBABILITY_COLUMNS) & set(df.columns)
    summary = json.loads((run.analysis_dir / "summary.json").read_text())
    assert summary["data_map"]["regions"] is None
    caplog.clear()
    analyze(run, quiet=True)
    assert not caplog.records  # quiet: no note


def test_thresholds_are_recorded_and_change_the_digest(analysed_run):
    digest = analysis_digest(analysed_run)
    before = load_analysis(analysed_run).dynamics
    a = analyze(analysed_run, variability_threshold=0.05, confidence_threshold=0.9, quiet=True)
    assert a.recomputed == ()  # no snapshot is recomputed for new thresholds
    assert (a.dynamics.confidence_threshold, a.dynamics.variability_threshold) == (0.9, 0.05)
    expected = dyn.data_map_region(
        before.columns["confidence_mean"],
        before.columns["confidence_std"],
        confidence_threshold=0.9,
        variability_threshold=0.05,
    )
    assert a.dynamics.columns["data_map_region"].tolist() == expected.tolist()
    assert expected.tolist() != before.columns["data_map_region"].tolist()
    loaded = load_analysis(analysed_run).dynamics
    assert (loaded.confidence_threshold, loaded.variability_threshold) == (0.9, 0.05)
    summary = json.loads((analysed_run.analysis_dir / "summary.json").read_text())["data_map"]
    assert (summary["confidence_threshold"], summary["variability_threshold"]) == (0.9, 0.05)
    changed = analysis_digest(analysed_run)
    assert changed != digest  # an approval of the old thresholds no longer holds
    analyze(analysed_run, variability_threshold=0.05, confidence_threshold=0.9, quiet=True)
    assert analysis_digest(analysed_run) == changed  # same thresholds: nothing stored changes
    analyze(analysed_run, quiet=True)
    assert analysis_digest(analysed_run) == digest


def test_a_stale_or_missing_dynamics_file_is_refused(analysed_run):
    path = analysed_run.analysis_dir / "dynamics.npz"
    old = path.read_bytes()
    probs = np.load(analysed_run.probs_path(20))
    np.save(analysed_run.probs_path(20), probs[:, ::-1].copy())
    analyze(analysed_run, quiet=True)
    path.write_bytes(old)  # as if analyze had stopped before writing it
    with pytest.raises(AnalysisError, match=r"dynamics.npz is older than the analysis .* run `spotreview analyze"):
        load_analysis(analysed_run)
    path.unlink()
    with pytest.raises(AnalysisError, match=r"dynamics.npz is missing; run `spotreview analyze"):
        load_analysis(analysed_run)
    analyze(analysed_run, quiet=True)  # repaired
    assert list(load_analysis(analysed_run).dynamics.columns) == list(dyn.COLUMNS)


def test_bad_probabilities_stop_analyze_with_the_step_named(synthetic_run):
    probs = np.load(synthetic_run.probs_path(20))
    probs[3, 1] = np.nan
    np.save(synthetic_run.probs_path(20), probs)
    with pytest.raises(AnalysisError, match=r"^probabilities of step 20 have NaN/inf values; "):
        analyze(synthetic_run, quiet=True)


def test_step_files_of_the_former_format_are_recomputed(analysed_run):
    path = analysed_run.analysis_dir / "step-10.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k not in ("neighbours", "label_prob", "margin")}
    np.savez(path, **(arrays | {"format": np.int64(1)}))
    assert analyze(analysed_run, quiet=True).recomputed == (10,)


def test_cli_options(analysed_run):
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", str(analysed_run.root), "--variability-threshold", "0.1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert load_analysis(analysed_run).dynamics.variability_threshold == 0.1
    result = runner.invoke(cli, ["analyze", str(analysed_run.root), "--confidence-threshold", "2"])
    assert result.exit_code == 2 and "--confidence-threshold" in result.output
    assert "--variability-threshold" in runner.invoke(cli, ["analyze", "--help"]).output


@pytest.mark.slow
def test_spotlight_serves_the_columns(analysed_run):
    """A real Spotlight server: the region arrives with its categories, the numbers as numbers."""
    import urllib.request

    from spotreview.reviewing.review import start_review
    from spotreview.reviewing.table import build_table

    df = build_table(analysed_run, save=False)
    with start_review(analysed_run, open_browser=False, quiet=True) as session:
        api = json.load(urllib.request.urlopen(session.url + "api/table/", timeout=10))
        cols = {c["name"]: c for c in api["columns"]}
        assert cols["data_map_region"]["dtype"]["categories"] == {"easy": 0, "ambiguous": 1, "hard": 2}
        for name in set(dyn.COLUMNS) - {"data_map_region"}:
            assert cols[name]["dtype"]["name"] in ("float", "int"), cols[name]

        def cell(column, row):
            url = f"{session.url}api/table/{column}/{row}?generation_id={api['generation_id']}"
            return json.loads(urllib.request.urlopen(url, timeout=10).read())

        for row in (0, 35):
            assert cell("data_map_region", row) == dyn.REGIONS.index(df["data_map_region"][row])
            assert cell("forgetting_events", row) == df["forgetting_events"][row]
            assert cell("confidence_mean", row) == pytest.approx(df["confidence_mean"][row])
