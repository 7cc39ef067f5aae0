"""The review table: columns, first/last by step number, exclusions, review.parquet."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_synthetic_run

from spotreview.analysis.analyze import analyze
from spotreview.analysis.store import load_analysis
from spotreview.errors import AnalysisError, RunDirError
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.table import (
    EMBEDDING_COLUMN,
    TRAJECTORY_COLUMNS,
    build_table,
    default_threshold,
    outlier_status,
    read_table,
)
from spotreview.rundir.evalset import read_eval

COLUMNS = [
    "id",
    "image",
    "label",
    "prediction_first",
    "prediction_last",
    "pca_first_x",
    "pca_first_y",
    "pca_last_x",
    "pca_last_y",
    "outlier_score_first",
    "outlier_score_last",
    "outlier_rank_first",
    "outlier_rank_last",
    "movement",
    "exclude",
    "exclude_reason",
    "correct_last",
    "label_quality_last",
    "is_label_issue_last",
    "outlier_status",
    "outlier_score_trajectory",
    "outlier_rank_trajectory",
]


@pytest.fixture
def analysed(analysed_run):
    return analysed_run


def test_columns_rows_and_images(analysed):
    df = build_table(analysed)
    assert set(COLUMNS) <= set(df.columns)
    ev = read_eval(analysed)
    assert list(df["id"]) == list(ev["id"])
    assert list(df["label"]) == list(ev["class_name"])
    for path in df["image"]:  # relative to the run, so the table can be handed on
        assert not Path(path).is_absolute() and (analysed.root / path).is_file()
    assert str(analysed.root) not in pd.read_parquet(analysed.review_table).to_csv()
    assert df["exclude"].dtype == bool and not df["exclude"].any()
    assert (df["exclude_reason"] == "").all()


def test_first_and_last_come_from_first_and_last_step_by_number(analysed):
    """Steps 0,5,10,20,100: lexical order would make step 5 "last"."""
    df = build_table(analysed, save=False)
    a = load_analysis(analysed)
    assert list(a.steps) == [0, 5, 10, 20, 100]
    names = np.array(["cat", "dog", "frog"])
    # Predictions straight from the probability files, independent of the analysis' order.
    first = names[np.load(analysed.probs_path(0)).argmax(1)]
    last = names[np.load(analysed.probs_path(100)).argmax(1)]
    assert list(df["prediction_first"]) == list(first)
    assert list(df["prediction_last"]) == list(last)
    np.testing.assert_array_equal(df[["pca_first_x", "pca_first_y"]].to_numpy(), a.coords[0])
    np.testing.assert_array_equal(df[["pca_last_x", "pca_last_y"]].to_numpy(), a.coords[-1])
    np.testing.assert_array_equal(df["outlier_score_last"], a.scores[-1])
    np.testing.assert_array_equal(df["outlier_rank_first"], a.ranks[0])
    moved = np.hypot(*(a.coords[-1] - a.coords[0]).T)
    np.testing.assert_allclose(df["movement"], moved, rtol=1e-6)
    # The planted outlier (last row) is the most atypical image at the last snapshot.
    assert df.iloc[-1]["outlier_rank_last"] == 1


def test_exclusions_and_saved_parquet(analysed_run):
    run = analysed_run
    exclude(run, ["img-0003"], reason="blurry")
    exclude(run, ["img-0004"])
    df = build_table(run)
    row = df.set_index("id")
    assert row.loc["img-0003", "exclude"] and row.loc["img-0003", "exclude_reason"] == "blurry"
    assert row.loc["img-0004", "exclude"] and row.loc["img-0004", "exclude_reason"] == ""
    assert df["exclude"].sum() == 2
    back = read_table(run.review_table)
    pd.testing.assert_frame_equal(
        back.drop(columns=list(TRAJECTORY_COLUMNS)), df.drop(columns=list(TRAJECTORY_COLUMNS))
    )
    for col in TRAJECTORY_COLUMNS:
        np.testing.assert_array_equal(np.stack(back[col]), np.stack(df[col]))
    assert back.attrs == df.attrs == {"class_names": ["cat", "dog", "frog"], "outlier_threshold": 8}


def test_no_probabilities_means_no_prediction_columns(tmp_path):
    run = make_synthetic_run(tmp_path / "run", steps=(0, 10))
    for step in (0, 10):
        run.probs_path(step).unlink()
    analyze(run, quiet=True)
    df = build_table(run)
    no_probs = {"prediction_first", "prediction_last", "correct_last", "label_quality_last",
                "is_label_issue_last"}  # fmt: skip
    assert not no_probs & set(df.columns)
    assert set(COLUMNS) - no_probs <= set(df.columns)


def test_run_without_analysis(synthetic_run):
    root = synthetic_run.root
    with pytest.raises(AnalysisError) as e:
        build_table(synthetic_run)
    assert str(e.value) == f"{root} has no analysis; run `spotreview analyze {root}` first"
    assert not synthetic_run.review_table.exists()


def test_trajectories_cover_every_snapshot(analysed):
    df = build_table(analysed, save=False)
    a = load_analysis(analysed)
    for col, values in (("outlier_score_trajectory", a.scores), ("outlier_rank_trajectory", a.ranks)):
        cells = np.stack(df[col])  # (n, 2, S): row 0 the steps, row 1 the values
        assert cells.shape == (len(df), 2, 5)
        assert (cells[:, 0] == [0, 5, 10, 20, 100]).all()
        np.testing.assert_array_equal(cells[:, 1], values.T)


def test_outlier_status_and_threshold(analysed):
    assert default_threshold(36, 8) == 8 and default_threshold(10_000, 8) == 100
    assert list(outlier_status([1, 1, 9, 9], [1, 9, 1, 9], 8)) == ["persistent", "resolved", "emerging", "none"]
    df = build_table(analysed, save=False, outlier_threshold=3)
    first, last = df["outlier_rank_first"] <= 3, df["outlier_rank_last"] <= 3
    assert (df["outlier_status"] == "persistent").sum() == (first & last).sum()
    assert (df.loc[last & ~first, "outlier_status"] == "emerging").all()
    assert df.set_index("id").at["img-0035", "outlier_status"] in ("persistent", "emerging")
    assert df.attrs["outlier_threshold"] == 3


def test_label_issues_find_flipped_labels(tmp_path):
    """Labels flipped in eval.csv after the probabilities were made: cleanlab must rank them
    worst and flag them; correct_last is the last prediction against the label."""
    run = make_synthetic_run(tmp_path / "run")
    ev = read_eval(run)
    flipped = [0, 13, 26]  # one per class, moved to the next class
    for i in flipped:
        ev.loc[i, "label"] = (ev.loc[i, "label"] + 1) % 3
        ev.loc[i, "class_name"] = ["cat", "dog", "frog"][ev.loc[i, "label"]]
    ev.to_csv(run.eval_csv, index=False)
    analyze(run, quiet=True)
    df = build_table(run, save=False)
    worst = set(df.nsmallest(3, "label_quality_last")["id"])
    assert worst == {f"img-{i:04d}" for i in flipped}
    assert set(df.loc[df["is_label_issue_last"], "id"]) >= worst
    assert not df.set_index("id").loc[sorted(worst), "correct_last"].any()
    assert df["label_quality_last"].between(0, 1).all()


def test_embeddings_column_is_served_not_saved(analysed):
    df = build_table(analysed, embeddings=True)
    x = np.load(analysed.embedding_path(100))
    np.testing.assert_array_equal(np.stack(df[EMBEDDING_COLUMN]), x)
    assert EMBEDDING_COLUMN not in read_table(analysed.review_table)
    analysed.embedding_path(100).rename(analysed.root / "elsewhere.npy")
    with pytest.raises(AnalysisError, match="the analysis covers steps 0, 5, 10, 20, 100 but embeddings now exist"):
        build_table(analysed, embeddings=True)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only: a read-only bind mount as root (who ignores modes), else chmod."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True).returncode:
        pytest.skip("cannot make a read-only bind mount here")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_run_gets_its_table_in_the_cache(analysed, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with read_only(analysed.root), caplog.at_level(logging.INFO, logger="spotreview"):
        df = build_table(analysed)
    assert not analysed.review_table.exists()
    cached = list((tmp_path / "cache" / "spotreview" / "tables").glob("*/review.parquet"))
    assert len(cached) == 1 and "read-only; review table written to" in caplog.text
    assert list(read_table(cached[0])["id"]) == list(df["id"])


def test_images_outside_the_run_are_refused(analysed_run, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(analysed_run.image_path("img-0001").read_bytes())
    link = analysed_run.images_dir / "img-0000.png"
    link.unlink()
    link.symlink_to(secret)  # followed, it would leave the run
    with pytest.raises(RunDirError, match="images/img-0000.png', which is outside the run"):
        build_table(analysed_run)
    link.unlink()
    table = pd.read_csv(analysed_run.eval_csv)
    table.loc[0, "image"] = str(secret)
    table.to_csv(analysed_run.eval_csv, index=False)
    with pytest.raises(RunDirError, match="outside the run"):
        build_table(analysed_run)


def test_image_paths_relative_through_a_symlinked_run(analysed, tmp_path):
    """The table's paths are cut from resolved paths: a run reached through a symlink (and a
    copy of the run elsewhere) still gets ``images/ID.png``."""
    link = tmp_path / "linked-run"
    link.symlink_to(analysed.root)
    df = build_table(link, save=False)
    assert list(df["image"]) == [f"images/{i}.png" for i in df["id"]]


def test_parquet_trajectories_of_any_shape(tmp_path):
    """Equal-shaped trajectory cells are written from one stacked array; cells of differing
    lengths (a hand-made table) take the per-cell way; both read back as they were."""
    from spotreview.reviewing.table import trajectories, write_table

    steps, values = np.array([0, 10, 20]), np.arange(6.0).reshape(3, 2)  # (S, n)
    cells = trajectories(steps, values)
    assert [c.tolist() for c in cells] == [[[0, 10, 20], [0, 2, 4]], [[0, 10, 20], [1, 3, 5]]]
    ragged = [np.ones((2, 3)), np.zeros((2, 1))]
    for col in (cells, ragged):
        df = pd.DataFrame({"id": ["a", "b"], TRAJECTORY_COLUMNS[0]: col, "x": [1.0, 2.0]})
        back = read_table(write_table(df, tmp_path / "t.parquet"))
        assert list(back.columns) == list(df.columns)
        for got, want in zip(back[TRAJECTORY_COLUMNS[0]], col):
            np.testing.assert_array_equal(got, want)
