"""The review table: columns, first/last by step number, exclusions, review.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_synthetic_run

from spotreview.analysis import analyze
from spotreview.analysis_store import load_analysis
from spotreview.errors import AnalysisError, RunDirError
from spotreview.exclusions import exclude
from spotreview.table import build_table

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
]


@pytest.fixture
def analysed(analysed_run):
    return analysed_run


def test_columns_rows_and_images(analysed):
    df = build_table(analysed)
    assert set(COLUMNS) <= set(df.columns)
    ev = analysed.read_eval()
    assert list(df["id"]) == list(ev["id"])
    assert list(df["label"]) == list(ev["class_name"])
    for path in df["image"]:
        assert Path(path).is_absolute() and Path(path).is_file()
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
    pd.testing.assert_frame_equal(pd.read_parquet(run.review_table), df)


def test_no_probabilities_means_no_prediction_columns(tmp_path):
    run = make_synthetic_run(tmp_path / "run", steps=(0, 10))
    for step in (0, 10):
        run.probs_path(step).unlink()
    analyze(run, quiet=True)
    df = build_table(run)
    assert "prediction_first" not in df and "prediction_last" not in df
    assert set(COLUMNS) - {"prediction_first", "prediction_last"} <= set(df.columns)


def test_run_without_analysis(synthetic_run):
    root = synthetic_run.root
    with pytest.raises(AnalysisError) as e:
        build_table(synthetic_run)
    assert str(e.value) == f"{root} has no analysis; run `spotreview analyze {root}` first"
    assert not synthetic_run.review_table.exists()


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
