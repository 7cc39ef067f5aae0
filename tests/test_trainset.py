"""The training set: `finetune --record-train`, and every stage after it with `--set train`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import cli_error

import spotreview
from spotreview.cli import cli
from spotreview.rundir.evalset import read_eval
from spotreview.rundir.run import Run

# 1438 digits / 64 per batch = 23 steps per epoch; 0.25 epochs = 6 steps; a save every 2.
TINY = ["--eval-size", "30", "--epochs", "0.25", "--batch-size", "64", "--save-steps", "2", "--quiet"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Run:
    """A tiny digits run that records 40 training images, analysed."""
    out = tmp_path_factory.mktemp("trainset") / "run"
    result = CliRunner().invoke(cli, ["finetune", "--out", str(out), "--record-train", "40", *TINY])
    assert result.exit_code == 0, result.output
    assert "4 snapshots (steps 0..6) of 30 eval images and 40 training images" in result.output
    assert "Recording the snapshots took " in result.output
    result = CliRunner().invoke(cli, ["analyze", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return Run(out)


def test_finetune_records_a_stratified_training_sample_at_every_snapshot(recorded):
    train = recorded.for_set("train")
    table = read_eval(train)
    assert len(table) == 40 and np.bincount(table["label"]).tolist() == [4] * 10  # stratified, seeded
    assert not set(table["id"]) & set(read_eval(recorded)["id"])  # other images than the evaluation set's
    assert all(p.startswith("train/images/") and (recorded.root / p).is_file() for p in table["image"])
    assert train.snapshots() == recorded.snapshots() == [0, 2, 4, 6]
    for step in train.snapshots():
        assert np.load(train.embedding_path(step)).shape == (40, 64)
        probs = np.load(train.probs_path(step))
        assert probs.shape == (40, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    manifest = recorded.read_manifest()
    assert manifest["num_train_recorded"] == 40 and manifest["command"]["record_train"] == 40
    assert 0 < manifest["record_seconds"] < manifest["seconds"]


def test_analyze_analyses_both_sets_and_the_tables_differ(recorded):
    eval_table = spotreview.build_table(recorded, save=False)
    train_table = spotreview.build_table(recorded, save=False, image_set="train")
    assert len(eval_table) == 30 and len(train_table) == 40
    assert set(train_table["id"]) == set(read_eval(recorded.for_set("train"))["id"])
    for column in ("confidence_mean", "forgetting_events", "data_map_region", "neighbour_change", "margin_mean"):
        assert column in train_table.columns
    # the training accuracy is the argmax of the training set's own probabilities
    last = np.load(recorded.for_set("train").probs_path(6)).argmax(1)
    labels = read_eval(recorded.for_set("train"))["label"].to_numpy()
    assert train_table["correct_last"].tolist() == (last == labels).tolist()
    assert spotreview.load_analysis(Run(recorded.root, "train")).scores.shape == (4, 40)
    summary = json.loads((recorded.root / "train" / "analysis" / "summary.json").read_text())
    assert summary["num_images"] == 40


def test_review_exclude_approve_export_and_bundle_work_on_the_training_set(recorded, tmp_path):
    import shutil

    run = Run(tmp_path / "run")
    shutil.copytree(recorded.root, run.root)
    train = run.for_set("train")
    some = read_eval(train)["id"].tolist()[:2]
    runner = CliRunner()

    result = runner.invoke(cli, ["exclude", str(run.root), "--set", "train", *some, "--reason", "blurry"])
    assert result.exit_code == 0, result.output
    assert json.loads(train.exclusions.read_text()) == {i: "blurry" for i in some}
    assert not run.exclusions.exists()  # the evaluation set's exclusions are its own
    eval_id = read_eval(run)["id"][0]
    assert "unknown image id" in cli_error(runner.invoke(cli, ["exclude", str(run.root), "--set", "train", eval_id]))

    # the evaluation set's approval does not approve the training set's export
    assert runner.invoke(cli, ["approve", str(run.root), "--by", "me", "--yes"]).exit_code == 0
    assert "not approved" in cli_error(runner.invoke(cli, ["export", str(run.root), "--set", "train", "--quiet"]))
    result = runner.invoke(cli, ["approve", str(run.root), "--set", "train", "--by", "me", "--yes"])
    assert result.exit_code == 0, result.output
    assert train.approval.is_file()
    result = runner.invoke(cli, ["export", str(run.root), "--set", "train", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run.root / "train" / "animation.gif").is_file() and not (run.root / "animation.gif").exists()
    status = runner.invoke(cli, ["status", str(run.root), "--set", "train"])
    assert status.exit_code == 0 and "approved" in status.output

    bundle = tmp_path / "train.zip"
    result = runner.invoke(cli, ["bundle", str(run.root), "--set", "train", "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as z:
        assert json.loads(z.read("bundle.json"))["image_set"] == "train"
        assert len([n for n in z.namelist() if n.startswith("train/images/")]) == 40
    other = read_eval(train)["id"][5]
    assert runner.invoke(cli, ["exclude", str(bundle), other]).exit_code == 0
    decisions = tmp_path / "train.decisions.json"
    assert json.loads(decisions.read_text())["image_set"] == "train"
    result = runner.invoke(cli, ["exclude", str(run.root), "--from", str(decisions)])
    assert result.exit_code == 0, result.output
    assert other in json.loads(train.exclusions.read_text())  # applied to the set it was made from


def test_review_serves_the_training_table_and_its_issues(recorded):
    import urllib.request

    from spotreview.reviewing.issues import issue_groups

    with spotreview.start_review(recorded, image_set="train", open_browser=False, quiet=True) as session:
        served = session.viewer.df
        with urllib.request.urlopen(session.url + "api/issues/", timeout=30) as r:
            issues = json.load(r)["issues"]
    assert len(served) == 40 and set(served["id"]) == set(read_eval(recorded.for_set("train"))["id"])
    expected = issue_groups(spotreview.build_table(recorded, save=False, image_set="train"))
    assert [(i["title"], i["rows"]) for i in issues] == [(g.title, list(g.rows)) for g in expected]
    assert expected and all(max(g.rows) < 40 for g in expected)


def test_bad_training_set_options_are_one_line(recorded, synthetic_run, tmp_path):
    runner = CliRunner()
    for bad in ("0", "x", "-3"):
        result = runner.invoke(cli, ["finetune", "--out", str(tmp_path / "r"), "--record-train", bad])
        assert result.exit_code == 2 and "Invalid value for '--record-train'" in result.output, bad
    result = runner.invoke(cli, ["finetune", "--out", str(tmp_path / "r"), "--record-train", "5000", *TINY])
    assert cli_error(result) == (
        "Error: train size 5000 is larger than the training data (1438 images in the training split); "
        "use --record-train 1438 or less"
    )
    before = sorted((p.relative_to(synthetic_run.root), p.read_bytes()) for p in synthetic_run.root.rglob("*.*"))
    result = runner.invoke(cli, ["finetune", "--out", str(synthetic_run.root), "--overwrite", "--record-train", "5000"])
    assert "--record-train 1438 or less" in cli_error(result)
    assert (
        sorted((p.relative_to(synthetic_run.root), p.read_bytes()) for p in synthetic_run.root.rglob("*.*")) == before
    )
    for command in (["review", "--no-browser", "--timeout", "1"], ["status"], ["exclude"], ["export"], ["approve"]):
        result = runner.invoke(cli, [command[0], str(synthetic_run.root), "--set", "train", *command[1:]])
        assert "has no train set" in cli_error(result), command
        assert "--record-train" in cli_error(result)
    result = runner.invoke(cli, ["status", str(recorded.root), "--set", "test"])
    assert result.exit_code == 2 and "'test' is not one of 'eval', 'train'" in result.output
