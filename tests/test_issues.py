"""Issue groups (reviewing/issues.py): each group's rows on a hand-made table, runs without
probabilities, the default layout's issues widget and data map, and a real Spotlight server
whose /api/issues/ serves the groups for a run and for a bundle."""

from __future__ import annotations

import json
import math
import urllib.request

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_synthetic_run

from spotreview.analysis.analyze import analyze
from spotreview.cli import cli
from spotreview.reviewing.issues import issue_groups
from spotreview.reviewing.layouts import DATA_MAP_PLOT, ISSUES_WIDGET, default_layout, layout_columns, layout_widgets

# --- a hand-made review table: 8 images, snapshots at steps 0, 10, 20, 40 (late: >= 30) ---

STEPS = [0.0, 10.0, 20.0, 40.0]
NAN = math.nan
TABLE = {
    "id": [f"i{k}" for k in range(8)],
    "label": ["a", "a", "b", "b", "a", "b", "a", "b"],
    "prediction_last": ["a", "b", "b", "a", "a", "b", "a", "b"],
    "is_label_issue_last": [False, True, False, True, False, False, True, False],
    "label_quality_last": [0.9, 0.2, 0.8, 0.05, 0.7, 0.9, 0.4, 0.6],
    "confidence_mean": [0.9, 0.2, 0.6, 0.1, 0.4, 0.8, 0.3, 0.45],
    "confidence_std": [0.05, 0.1, 0.35, 0.05, 0.1, 0.1, 0.2, 0.1],
    "correct_fraction": [1.0, 0.0, 0.5, 0.25, 0.75, 0.75, 0.25, 0.5],
    "forgetting_events": [0, 0, 2, 1, 3, 2, 0, 1],
    "learned_step": [0.0, NAN, 40.0, NAN, 30.0, 20.0, 40.0, 10.0],
    "data_map_region": ["easy", "hard", "ambiguous", "hard", "hard", "easy", "hard", "hard"],
    "outlier_status": ["persistent", "none", "emerging", "none", "persistent", "resolved", "emerging", "none"],
    "outlier_rank_first": [3, 5, 7, 6, 1, 2, 8, 4],
    "outlier_rank_last": [2, 5, 1, 6, 3, 7, 4, 8],
    "outlier_score_last": [0.2, 0.5, 0.1, 0.6, 0.3, 0.7, 0.4, 0.8],
    "neighbour_change": [0.1, 0.9, 0.2, 0.9, 0.1, 0.5, 0.2, 0.3],
    "movement": [0.5, 1.0, 0.4, 2.0, 0.3, 0.1, 0.2, 0.6],
}
# Each group's rows, worst first (ties in row order).
EXPECTED = {
    "likely_mislabelled": (3, 1, 6),  # label quality up
    "hard_to_learn": (3, 1, 6, 4, 7),  # confidence_mean up
    "forgotten": (4, 2, 5),  # forgetting_events down, ties in row order
    "learned_late": (2, 6, 4),  # learned_step >= 30, down; NaN (never learned) left out
    "persistent_outliers": (0, 4),  # outlier_rank_last up
    "emerging_outliers": (2, 6),
    "largest_movers": (3, 1),  # top 2 (the threshold) of change, the tie by movement
}


def _table(**changes) -> pd.DataFrame:
    df = pd.DataFrame(TABLE | changes)
    df["outlier_score_trajectory"] = [np.stack([np.asarray(STEPS), np.zeros(4)])] * len(df)
    df.attrs.update(outlier_threshold=2)
    return df


def test_each_group_has_exactly_its_rows_worst_first():
    groups = issue_groups(_table())
    assert [g.key for g in groups] == list(EXPECTED)
    assert {g.key: g.rows for g in groups} == EXPECTED
    for g in groups:
        assert g.severity in ("low", "medium", "high") and g.title and g.description.endswith(".")
        assert set(g.columns) <= set(TABLE), g.columns
        assert all(isinstance(r, int) for r in g.rows)
    severity = {g.key: g.severity for g in groups}
    assert severity["likely_mislabelled"] == "high" and severity["largest_movers"] == "low"
    late = next(g for g in groups if g.key == "learned_late")
    assert "from step 30 or later" in late.description and "steps 0 to 40" in late.description


def test_empty_groups_are_left_out_and_rules_hold_at_their_edges():
    df = _table(
        is_label_issue_last=[False] * 8,
        forgetting_events=[1] * 8,  # below 2: none forgotten
        neighbour_change=[0.5] * 8,  # all alike: none above the median
    )
    keys = [g.key for g in issue_groups(df)]
    assert keys == ["hard_to_learn", "learned_late", "persistent_outliers", "emerging_outliers"]
    # the cut of "the last quarter" is inclusive: learned exactly at step 30 counts
    assert next(g for g in issue_groups(df) if g.key == "learned_late").rows == (2, 6, 4)


def test_largest_movers_count_follows_the_threshold():
    df = _table()
    assert next(g for g in issue_groups(df, outlier_threshold=3) if g.key == "largest_movers").rows == (3, 1, 5)
    df.attrs.clear()  # no threshold in attrs: 1 % of 8 rows, at least 1
    assert next(g for g in issue_groups(df) if g.key == "largest_movers").rows == (3,)


def test_learned_late_needs_three_snapshots():
    df = _table()
    df["outlier_score_trajectory"] = [np.stack([np.asarray([0.0, 40.0]), np.zeros(2)])] * len(df)
    assert "learned_late" not in [g.key for g in issue_groups(df)]


def test_a_run_without_probabilities_gets_the_groups_its_columns_allow():
    from spotreview.analysis.dynamics import PROBABILITY_COLUMNS

    df = _table().drop(
        columns=[*PROBABILITY_COLUMNS, "prediction_last", "is_label_issue_last", "label_quality_last"], errors="ignore"
    )
    groups = issue_groups(df)
    assert [g.key for g in groups] == ["persistent_outliers", "emerging_outliers", "largest_movers"]
    assert all(set(g.columns) <= set(df.columns) for g in groups)
    assert issue_groups(_table().iloc[:0]) == []


# --- the default layout ------------------------------------------------------------------


def test_default_layout_has_the_issues_widget_and_the_data_map():
    widgets = {w.name: w for w in layout_widgets(default_layout())}
    assert widgets[ISSUES_WIDGET].type == "IssuesWidget"
    data_map = widgets[DATA_MAP_PLOT].config
    assert data_map.x_column == "confidence_std" and data_map.y_column == "confidence_mean"
    assert data_map.color_by_column == "data_map_region"


def test_default_layout_without_the_data_map_columns():
    from spotreview.analysis.dynamics import PROBABILITY_COLUMNS

    columns = layout_columns(default_layout()) - set(PROBABILITY_COLUMNS)
    widgets = {w.name: w for w in layout_widgets(default_layout(columns))}
    assert DATA_MAP_PLOT not in widgets
    assert widgets[ISSUES_WIDGET].type == "IssuesWidget"  # the outlier groups need no probabilities
    assert layout_columns(default_layout(columns)) <= columns


# --- a real Spotlight server ---------------------------------------------------------------


@pytest.fixture
def flipped(tmp_path):
    """A synthetic run with the labels of 4 images moved to the next class: likely
    mislabelled, hard to learn, never learned."""
    run = make_synthetic_run(tmp_path / "run")
    ev = pd.read_csv(run.eval_csv)
    for i in (0, 13, 20, 27):
        ev.loc[i, "label"] = (ev.loc[i, "label"] + 1) % 3
        ev.loc[i, "class_name"] = ("cat", "dog", "frog")[ev.loc[i, "label"]]
    ev.to_csv(run.eval_csv, index=False)
    analyze(run, quiet=True)
    return run


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _served(session):
    """The served issues, and the served table's columns as lists of cell values (category
    columns as their names)."""
    api = _get(session.url + "api/table/")
    issues = _get(session.url + "api/issues/")
    assert issues["running"] is False  # analyze=False: Spotlight runs no analyzers of its own
    columns = {}
    for c in api["columns"]:
        values = c.get("values")
        if values is None:
            continue
        cats = (c["dtype"].get("categories") or {}) if c["dtype"]["name"] == "Category" else {}
        names = {code: name for name, code in cats.items()}
        columns[c["name"]] = [names.get(v, v) for v in values] if names else values
    return issues["issues"], columns


def _check_rows_match_columns(issues, cols, df):
    """Every served group is the pure function's group on the served table, and its rows
    satisfy its rule in the served columns."""
    expected = issue_groups(df)
    assert [i["title"] for i in issues] == [g.title for g in expected]
    for served, g in zip(issues, expected):
        assert served["rows"] == list(g.rows)
        assert (served["severity"], served["columns"], served["description"]) == (
            g.severity,
            list(g.columns),
            g.description,
        )
        assert all(c in cols for c in served["columns"]), served["columns"]
    by_key = {g.key: i for g, i in zip(expected, issues)}
    rule = {
        "likely_mislabelled": lambda r: cols["is_label_issue_last"][r] is True,
        "hard_to_learn": lambda r: cols["data_map_region"][r] == "hard",
        "forgotten": lambda r: cols["forgetting_events"][r] >= 2,
        "persistent_outliers": lambda r: cols["outlier_status"][r] == "persistent",
        "emerging_outliers": lambda r: cols["outlier_status"][r] == "emerging",
    }
    for key, holds in rule.items():
        if key in by_key:
            assert all(holds(r) for r in by_key[key]["rows"]), key
    mislabelled = by_key["likely_mislabelled"]["rows"]
    quality = [cols["label_quality_last"][r] for r in mislabelled]
    assert quality == sorted(quality)  # worst first
    return by_key


@pytest.mark.slow
def test_spotlight_serves_the_issue_groups_and_refreshes_them(flipped):
    from spotreview.reviewing.review import start_review
    from spotreview.reviewing.table import build_table

    df = build_table(flipped, save=False)
    with start_review(flipped, open_browser=False, quiet=True) as session:
        issues, cols = _served(session)
        by_key = _check_rows_match_columns(issues, cols, df)
        assert {"likely_mislabelled", "hard_to_learn", "persistent_outliers"} <= set(by_key)
        assert {0, 13, 20, 27} <= set(by_key["likely_mislabelled"]["rows"])
        assert cols["id"] == list(df["id"])

        # the analysis changes (a lower confidence threshold): the refreshed review serves the
        # new groups with the new table
        analyze(flipped, confidence_threshold=0.05, quiet=True)
        assert session.refresh()
        df = build_table(flipped, save=False)
        issues, cols = _served(session)
        by_key = _check_rows_match_columns(issues, cols, df)
        assert "hard_to_learn" not in by_key or len(by_key["hard_to_learn"]["rows"]) < 4


@pytest.mark.slow
def test_a_bundle_serves_the_same_issue_groups(flipped, tmp_path, monkeypatch):
    from spotreview.reviewing.review import start_review
    from spotreview.reviewing.table import build_table

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundle = tmp_path / "review.zip"
    assert CliRunner().invoke(cli, ["bundle", str(flipped.root), "-o", str(bundle)]).exit_code == 0
    with start_review(flipped, open_browser=False, quiet=True) as session:
        from_run, _ = _served(session)
    with start_review(bundle, open_browser=False, quiet=True) as session:
        issues, cols = _served(session)
        layout = json.dumps(_get(session.url + "api/layout/"))
    assert issues == from_run
    _check_rows_match_columns(issues, cols, build_table(flipped, save=False))
    assert "IssuesWidget" in layout and DATA_MAP_PLOT in layout
