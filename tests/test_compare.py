"""Comparing two runs: the check that they hold the same evaluation set, the comparison table and
its issue groups, the approval of a comparison, the synchronised timeline, and the GIF/MP4
export (tests/pairs.py builds the runs; the served review and the HTML page in a browser are in
test_compare_browser.py)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error
from pairs import BOTH_WRONG, BROKEN, FIXED, make_pair
from PIL import Image

import spotreview
from spotreview.analysis.analyze import analyze
from spotreview.cli import cli
from spotreview.errors import DataError, ExportError
from spotreview.reviewing.compare import comparison_issue_groups
from spotreview.reviewing.table import build_table
from spotreview.rundir.run import Run

SMALL = (480, 270)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def _pair_template(tmp_path_factory):
    a, b = make_pair(tmp_path_factory.mktemp("pair"))
    for run in (a, b):
        analyze(run, quiet=True)
    return a, b


@pytest.fixture
def pair(_pair_template, tmp_path):
    """Runs A and B, analysed, not approved: a fresh copy for each test."""
    runs = []
    for template in _pair_template:
        shutil.copytree(template.root, tmp_path / template.root.name)
        runs.append(Run(tmp_path / template.root.name))
    return tuple(runs)


def _digests(*paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


# --- the comparison table ----------------------------------------------------------------------


def test_table_puts_both_runs_side_by_side_matched_by_id(pair):
    a, b = pair
    df = spotreview.comparison_table(a, b)
    table_a, table_b = build_table(a, save=False), build_table(b, save=False).set_index("id")
    assert df["id"].tolist() == table_a["id"].tolist()  # A's row order; B's eval.csv is shuffled
    for column in ("outlier_rank_last", "prediction_last", "label_quality_last", "confidence_mean", "data_map_region"):
        assert df[f"{column}_a"].tolist() == table_a[column].tolist()
        assert df[f"{column}_b"].tolist() == table_b.loc[df["id"], column].tolist()
    change = dict(zip(df["id"], df["change"]))
    assert {i for i, c in change.items() if c == "fixed"} == set(FIXED)
    assert {i for i, c in change.items() if c == "broken"} == set(BROKEN)
    assert {i for i, c in change.items() if c == "both_wrong"} == set(BOTH_WRONG)
    assert (df["rank_change"] == df["outlier_rank_last_b"] - df["outlier_rank_last_a"]).all()
    fixed = df["change"] == "fixed"
    assert (df.loc[fixed, "label_quality_change"] > 0.5).all()  # 0.1 -> 0.8 believed
    assert df.attrs["comparison"] == {"a": "a", "b": "b"} and df.attrs["class_names"] == ["cat", "dog", "frog"]
    summary = df.loc[df["id"] == FIXED[0], "summary"].item()
    assert "**change, A → B** fixed" in summary and "**A (a)**" in summary and "**B (b)**" in summary
    assert not (a.root / "review.parquet").exists() and not (b.root / "review.parquet").exists()  # nothing written


def test_issue_groups_broken_and_fixed_by_b(pair):
    a, b = pair
    spotreview.exclude(b, [BROKEN[0]], reason="blurry")
    df = spotreview.comparison_table(a, b)
    groups = {g.key: g for g in comparison_issue_groups(df)}
    assert list(groups) == ["broken_by_b", "fixed_by_b", "wrong_in_both"]
    assert (groups["broken_by_b"].title, groups["broken_by_b"].severity) == ("broken by B", "high")
    ids = {key: [df["id"][r] for r in g.rows] for key, g in groups.items()}
    assert sorted(ids["broken_by_b"]) == sorted(BROKEN) and sorted(ids["fixed_by_b"]) == sorted(FIXED)
    assert ids["wrong_in_both"] == list(BOTH_WRONG)
    assert "change" in groups["fixed_by_b"].columns and "label_quality_change" in groups["fixed_by_b"].columns
    excluded = df.set_index("id").loc[BROKEN[0]]
    assert excluded["exclude"] and excluded["exclude_reason"] == "B: blurry"  # either run's exclusions


def test_groups_without_predictions_are_none(pair):
    df = spotreview.comparison_table(*pair).drop(columns=["change"])
    assert comparison_issue_groups(df) == []


# --- refused: not the same evaluation set ---------------------------------------------------------


def _edit_csv(run: Run, change) -> None:
    listing = pd.read_csv(run.eval_csv, dtype={"id": str})
    change(listing).to_csv(run.eval_csv, index=False)


@pytest.mark.parametrize(
    "spoil, difference",
    [
        (lambda b: b.update_manifest(class_names=["cat", "dog", "toad"]), "class 2 is 'frog' in A, 'toad' in B"),
        (lambda b: _edit_csv(b, lambda t: t[t["id"] != "img-0005"]), "image img-0005 is in A's evaluation set only"),
        (
            lambda b: _edit_csv(b, lambda t: t.assign(id=t["id"].replace("img-0005", "img-9999"))),
            "image img-0005 is in A's evaluation set only",
        ),
        (
            lambda b: _edit_csv(b, lambda t: t.assign(label=np.where(t["id"] == "img-0004", 2, t["label"]))),
            "the label of image img-0004 is 'cat' in A, 'frog' in B",
        ),
    ],
    ids=["class names", "an image fewer", "another id", "a label"],
)
def test_another_evaluation_set_is_refused_naming_the_first_difference(pair, tmp_path, spoil, difference):
    a, b = pair
    spoil(b)
    hint = "compare runs of the same evaluation set (finetune with the same --dataset, --eval-size and --seed)"
    expected = f"cannot compare {a.root} and {b.root}: {difference}; {hint}"
    with pytest.raises(DataError) as e:
        spotreview.comparison_table(a, b)
    assert str(e.value) == expected
    out = tmp_path / "cmp.gif"
    assert cli_error(invoke("compare", a.root, b.root, "-o", out, "--force", "-q")) == f"Error: {expected}"
    assert cli_error(invoke("approve", a.root, "--compare", b.root, "--yes")) == f"Error: {expected}"
    assert not out.exists() and not (a.root / "comparisons").exists()


def test_other_image_content_is_refused(pair):
    a, b = pair
    path = b.image_path("img-0007")
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(path)
    with pytest.raises(DataError, match=r"image img-0007 differs \("):
        spotreview.comparison_table(a, b)
    Image.fromarray(np.asarray(Image.open(a.image_path("img-0007")))).save(
        path, optimize=True
    )  # other bytes, same pixels
    assert len(spotreview.comparison_table(a, b)) == 36
    with pytest.raises(DataError, match="cannot compare .* with itself"):
        spotreview.comparison_table(a, a)


def test_what_a_comparison_review_refuses(pair, tmp_path):
    a, b = pair
    bundle = tmp_path / "review.zip"
    bundle.write_bytes(b"")
    assert cli_error(invoke("review", bundle, "--compare", b.root, "--no-browser", "--timeout", "1")) == (
        f"Error: {bundle} is a bundle; compare two run directories, then bundle the comparison"
    )
    assert cli_error(invoke("review", a.root, "--compare", b.root, "--embeddings", "--timeout", "1")) == (
        "Error: a comparison serves no embeddings; drop --embeddings"
    )


def test_compare_is_a_public_stage_with_a_typed_record():
    import dataclasses
    import typing

    assert dataclasses.is_dataclass(spotreview.Compared) and spotreview.Compared.__doc__
    assert typing.get_type_hints(spotreview.compare)["return"] is spotreview.Compared
    assert typing.get_type_hints(spotreview.approve_comparison)["return"] is spotreview.ComparisonApproval


# --- approval of a comparison -------------------------------------------------------------------


def test_export_needs_the_comparison_approved_and_current(pair, tmp_path):
    a, b = pair
    out = tmp_path / "cmp.gif"
    error = cli_error(invoke("compare", a.root, b.root, "-o", out, "-q"))
    assert error.startswith(f"Error: cannot compare {a.root} and {b.root}: it is not approved; review them with ")
    assert error.endswith("or pass --force to export anyway") and not out.exists()
    spotreview.approve(a)  # a run's own approval is not the comparison's
    assert spotreview.comparison_approval_status(a, b).state == "missing"

    result = invoke("approve", a.root, "--compare", b.root, "--yes", "--by", "reviewer")
    assert result.exit_code == 0, result.output
    assert f"Approving the comparison of {a.root.resolve()} (A) with {b.root.resolve()} (B)" in result.output
    status = spotreview.comparison_approval_status(a, b)
    assert status.approved and status.record.by == "reviewer"
    folder = next((a.root / "comparisons").iterdir())
    assert folder.name.startswith("b-") and (folder / "approval.json").is_file()
    assert not (b.root / "comparisons").exists()  # B is only read

    done = spotreview.compare(a, b, out, size=SMALL, quiet=True)
    assert not done.forced and done.approval["state"] == "approved"
    assert json.loads((folder / "export.json").read_text())["out"] == str(out)

    spotreview.exclude(b, ["img-0009"], reason="duplicate")  # a change in B
    status = spotreview.comparison_approval_status(a, b)
    assert status.state == "stale" and status.message.startswith("stale: B's exclusions changed since reviewer")
    before = _digests(out)
    assert "B's exclusions changed" in cli_error(invoke("compare", a.root, b.root, "-o", out, "-q"))
    assert _digests(out) == before  # the finished output is untouched
    spotreview.exclude(b, [], clear=True)
    assert spotreview.comparison_approval_status(a, b).approved

    (a.analysis_dir / "summary.json").write_text("{}")  # a change in A's analysis
    assert spotreview.comparison_approval_status(a, b).message.startswith("stale: A's analysis changed")

    forced = invoke("compare", a.root, b.root, "-o", out, "--force", "--size", "480x270", "-q")
    assert forced.exit_code == 0, forced.output
    assert "forced: the comparison is not approved (stale)" in forced.stdout
    assert "warning: comparing" in forced.stderr
    assert json.loads((folder / "export.json").read_text())["forced"] is True


# --- the synchronised timeline and the frames -------------------------------------------------------


def _scene(a, b, **kwargs):
    from spotreview.analysis.store import load_analysis
    from spotreview.rendering.compare_scene import build_comparison_scene, permuted
    from spotreview.reviewing.compare import check_comparable

    rows = check_comparable(a, b)
    return build_comparison_scene(load_analysis(a), permuted(load_analysis(b), rows), size=SMALL, **kwargs)


def test_sync_by_progress_step_and_epoch(pair):
    a, b = pair
    scene = _scene(a, b, sync="progress", tween=1)
    # A's snapshots at 0, 5, 10, 20, 100 of 100 steps; B's at 0, 10, 40 of 40: every one a key frame
    np.testing.assert_allclose(scene.keys, [0, 0.05, 0.1, 0.2, 0.25, 1.0])
    assert scene.n_frames == 6 + 5
    key = {round(float(v), 6): 2 * k for k, v in enumerate(scene.keys)}  # key frame k is frame 2k (tween 1)
    assert scene.position(0, key[0.2]) == 3 and scene.position(1, key[0.25]) == 1  # each run at its own snapshot
    assert scene.position(1, key[0.1]) == pytest.approx(0.4)  # B between its first two snapshots
    assert scene.position(0, key[0.25]) == pytest.approx(3 + 0.05 / 0.8)
    assert scene.position(1, scene.n_frames - 1) == 2 and scene.position(0, scene.n_frames - 1) == 4

    by_step = _scene(a, b, sync="step")
    np.testing.assert_array_equal(by_step.keys, [0, 5, 10, 20, 40, 100])
    assert by_step.position(1, 5) == 2  # B, done at step 40, holds its last snapshot
    by_epoch = _scene(a, b, sync="epoch")  # A: 2 epochs in 100 steps, B: 2 in 40
    np.testing.assert_allclose(by_epoch.keys, [0, 0.1, 0.2, 0.4, 0.5, 2.0])

    _edit_log = pd.read_csv(b.log_csv).drop(columns=["epoch"])
    _edit_log.to_csv(b.log_csv, index=False)
    with pytest.raises(ExportError, match=r"^--sync epoch needs the epoch of every snapshot, which b's log.csv"):
        _scene(a, b, sync="epoch")


def test_leaderboard_is_the_images_whose_outcome_differs(pair):
    a, b = pair
    scene = _scene(a, b, top_k=6)
    board = [scene.ids[r] for r in scene.board]
    assert sorted(board[:5]) == sorted(FIXED + BROKEN)  # fixed or broken by B first
    assert scene.kinds[:5].count("fixed") == 3 and scene.kinds[:5].count("broken") == 2
    assert scene.counts == {"fixed": 3, "broken": 2, "both_right": 30, "both_wrong": 1}
    slot = board.index(FIXED[0])
    assert scene.heads[slot] == f"#{slot + 1} fixed" and scene.feet[slot] == "cat\nA dog ✗ · B cat ✓"
    excluded = _scene(a, b, top_k=6, exclude={FIXED[0]})
    assert FIXED[0] not in [excluded.ids[r] for r in excluded.board]


def test_gif_and_mp4_frames(pair, tmp_path):
    import imageio.v2 as iio2
    import imageio.v3 as iio

    a, b = pair
    spotreview.approve_comparison(a, b)
    done = spotreview.compare(a, b, tmp_path / "cmp.gif", size=SMALL, tween=1, fps=4, quiet=True)
    frames = iio.imread(done.path, index=None)
    assert (done.format, done.frames, done.sync) == ("gif", 11, "progress")
    assert frames.shape[:3] == (11, SMALL[1], SMALL[0]) and not (frames[0] == frames[-1]).all()
    assert done.board[:5] and set(done.board[:5]) == set(FIXED + BROKEN) and done.counts["fixed"] == 3
    done = spotreview.compare(a, b, tmp_path / "cmp.mp4", size=(482, 272), sync="step", quiet=True)
    with iio2.get_reader(done.path, format="FFMPEG") as reader:
        assert reader.get_meta_data()["codec"] == "h264" and reader.count_frames() == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_frame_shows_both_panels_and_the_rings(pair):
    """The last frame at 1280x720: both panels' points in the class colours, the fixed and broken
    rings in their colours in both panels, the leaderboard's thumbnails."""
    from matplotlib.colors import to_rgb

    from spotreview.rendering.compare_figure import ComparisonRenderer
    from spotreview.rendering.style import CHANGE_COLORS, class_hex

    a, b = pair
    scene = _scene(a, b)
    scene.size, scene.dpi = (1280, 720), 100.0
    rgb = ComparisonRenderer(scene).render(scene.n_frames - 1).astype(int)

    def near(colour, region) -> int:
        target = np.array(to_rgb(colour)) * 255
        return int((np.abs(region - target).sum(-1) < 40).sum())

    left, right = rgb[200:480, 30:480], rgb[200:480, 520:990]
    for panel in (left, right):
        assert near(class_hex(3)[0], panel) > 20
        assert near(CHANGE_COLORS["fixed"], panel) > 20 and near(CHANGE_COLORS["broken"], panel) > 10
    assert near(CHANGE_COLORS["fixed"], rgb[80:200, 1000:]) > 10  # the "#1 fixed" caption
