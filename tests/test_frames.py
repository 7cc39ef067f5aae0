"""What the exported frames show without collisions: rank and id labels placed apart and
inside the axes (checked on the drawn labels' bounding boxes), captions that keep the end of
an id, ``--highlight``, the step-0 marker, scores in significant digits, plurals, the loss
curve of a run without log.csv, and the ranges of --fps/--size.

The still of a clustered-outlier snapshot goes to ``build/test-artifacts/clustered-outliers.png``
(``build/`` is git-ignored), to be looked at.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error, make_synthetic_run
from PIL import Image

from spotreview.analysis.analyze import analyze
from spotreview.analysis.store import load_analysis
from spotreview.cli import cli
from spotreview.cli.format import format_status, format_table
from spotreview.errors import ExportError
from spotreview.rendering.export import export
from spotreview.rendering.figure import Renderer
from spotreview.rendering.placement import place_labels
from spotreview.rendering.scene import build_scene
from spotreview.reviewing.approval import approve
from spotreview.reviewing.status import run_status
from spotreview.rundir.atomic import save_npy
from spotreview.rundir.run import Run
from spotreview.util.text import middle_ellipsis, plural, sig

SMALL = (320, 180)
STILL = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "clustered-outliers.png"
CLUSTER = 8  # rows planted together, far from the rest: the whole top 8 sits in one spot


@pytest.fixture(scope="module")
def _clustered_template(tmp_path_factory) -> Run:
    """An approved run whose ids all start `validation-` and whose 8 most atypical images
    sit in one tight clump at the last snapshot: small vectors pointing every which way
    (atypical to cleanlab's cosine kNN) all project near the origin (PCA is Euclidean)."""
    run = make_synthetic_run(tmp_path_factory.mktemp("clustered") / "run", n_per_class=15, steps=(0, 10, 20))
    table = pd.read_csv(run.eval_csv)
    new = [f"validation-{i:06d}" for i in range(len(table))]
    for old, image_id in zip(table["id"], new):
        run.image_path(old).rename(run.image_path(image_id))
    table["id"], table["image"] = new, [f"images/{i}.png" for i in new]
    table.to_csv(run.eval_csv, index=False)
    rng = np.random.default_rng(1)
    for step in run.snapshots():
        x = np.load(run.embedding_path(step))
        x[-CLUSTER:] = rng.normal(0, 0.3, size=(CLUSTER, x.shape[1]))
        save_npy(run.embedding_path(step), x)
    analyze(run, quiet=True)
    approve(run, by="test")
    return run


@pytest.fixture
def clustered(_clustered_template, tmp_path) -> Run:
    root = tmp_path / "clustered"
    shutil.copytree(_clustered_template.root, root)
    return Run(root)


def _label_boxes(r: Renderer, shown: int) -> list:
    """Window extents (pixels) of the rank labels shown and of every id label's box."""
    renderer = r.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in r.ranks[:shown]]
    return boxes + [t.get_bbox_patch().get_window_extent(renderer) for t in r.names]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_labels_of_clustered_outliers_never_overlap_and_stay_inside_the_axes(clustered):
    analysis = load_analysis(clustered)
    planted = set(analysis.ids[-CLUSTER:])
    picks = [analysis.ids[-1], analysis.ids[0]]  # one inside the clump, one in the cloud
    scene = build_scene(analysis, highlight=picks)
    r = Renderer(scene)
    inside = r.ax.get_window_extent()
    rows = scene.board[-1]
    assert {analysis.ids[i] for i in rows} == planted  # the whole last top 8 is the clump...
    anchors = r.ax.transData.transform(scene.coords[-1][rows])
    assert np.ptp(anchors, 0).max() < 40  # ...tighter than two labels: fixed offsets would pile up
    for snapshot in range(len(scene.steps)):
        r.render(snapshot)
        rows = scene.board[snapshot]
        boxes = _label_boxes(r, len(rows))
        assert len(boxes) == CLUSTER + len(picks)
        for i, a in enumerate(boxes):
            assert inside.x0 <= a.x0 and a.x1 <= inside.x1 and inside.y0 <= a.y0 and a.y1 <= inside.y1
            for b in boxes[i + 1 :]:
                assert not _overlaps(a, b), (a, b)
        assert [t.get_text() for t in r.names] == picks  # the picks are named with their ids
        assert len(r.leaders.get_segments()) > 0  # labels pushed away point back to their dots
    # The still, to be looked at.
    STILL.parent.mkdir(parents=True, exist_ok=True)
    export(clustered, still=STILL, highlight=picks, quiet=True)
    print(f"clustered-outlier still: {STILL}")


def test_place_labels_keeps_every_label_in_the_box_when_room_runs_out():
    anchors = np.full((30, 2), 5.0)  # 30 labels on one point in the corner of a small box
    sizes = np.full((30, 2), 20.0)
    centres = place_labels(anchors, sizes, (0, 0, 100, 60), gap=4)
    assert (centres - 10 >= 0).all() and (centres[:, 0] + 10 <= 100).all() and (centres[:, 1] + 10 <= 60).all()
    few = place_labels(anchors[:4], sizes[:4], (0, 0, 100, 60), gap=4)  # room for four
    boxes = np.concatenate([few - 10, few + 10], 1)
    for i in range(4):
        for j in range(i + 1, 4):
            a, b = boxes[i], boxes[j]
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_captions_keep_the_distinguishing_end_of_the_id(clustered, analysed_run):
    # Short ids are shown whole: `0.0123 · img-0035`.
    scene = build_scene(load_analysis(analysed_run))
    r = Renderer(scene)
    r.render(len(scene.steps) - 1)
    rows, scores = scene.board[-1], scene.board_scores[-1]
    assert [t.get_text() for t in r.feet[: len(rows)]] == [f"{sig(v)} · {scene.ids[i]}" for i, v in zip(rows, scores)]
    # `validation-000041` does not fit beside its score: it is cut in the middle, not the end.
    scene = build_scene(load_analysis(clustered))
    r = Renderer(scene)
    r.render(len(scene.steps) - 1)
    rows, scores = scene.board[-1], scene.board_scores[-1]
    renderer = r.canvas.get_renderer()
    cut = [t.get_text() for t in r.feet[: len(rows)]]
    assert len(set(cut)) == len(rows)  # the captions still tell the images apart...
    for text, row, score, foot in zip(cut, rows, scores, r.feet):
        assert text.startswith(f"{sig(score)} · valid") and "…" in text
        assert text.endswith(scene.ids[row][-5:])  # ...by the end of the id
        assert foot.get_window_extent(renderer).width <= r.caption_px  # and fit under the tile


def test_middle_ellipsis_sig_and_plural():
    assert middle_ellipsis("validation-000123", 12) == "valid…000123"
    assert middle_ellipsis("img-1", 12) == "img-1"
    assert [sig(v) for v in (1.234e-4, 1.2e-5, 0.25, float("nan"))] == ["0.000123", "1.2e-5", "0.25", "-"]
    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]


def test_step_zero_marker_is_clear_of_the_loss_axis(clustered):
    r = Renderer(build_scene(load_analysis(clustered)))
    r.render(0)
    assert r.now.get_xdata()[0] == 0
    marker_x = r.lax.transData.transform((0, 0))[0]
    assert marker_x - r.lax.get_window_extent().x0 >= 5  # pixels between the y axis and the marker


def test_highlight_rings_and_names_the_picks_in_every_format(clustered):
    analysis = load_analysis(clustered)
    picks = [analysis.ids[3], analysis.ids[20]]
    plain = export(clustered, still=clustered.root / "plain.png", size=SMALL, quiet=True).path
    for suffix in (".gif", ".mp4"):
        done = export(
            clustered,
            clustered.root / f"a{suffix}",
            still=clustered.root / f"h{suffix}.png",
            size=SMALL,
            highlight=picks,
            quiet=True,
        )
        assert done.highlight == picks
        assert json.loads(clustered.export_record.read_text())["highlight"] == picks
        assert Path(done.out).stat().st_size > 0
        a = np.asarray(Image.open(plain).convert("RGB"))
        b = np.asarray(Image.open(done.still).convert("RGB"))
        assert (a != b).any()  # the rings and labels are drawn


def test_unknown_highlight_ids_are_named_in_one_line(clustered):
    with pytest.raises(ExportError) as e:
        export(clustered, highlight=["validation-000001", "nope", "img-0003"], quiet=True)
    assert str(e.value).startswith("cannot highlight nope, img-0003: not in the evaluation set")
    result = CliRunner().invoke(
        cli, ["export", str(clustered.root), "--highlight", "nope,validation-000001", "--highlight", "zzz"]
    )
    assert cli_error(result).startswith("Error: cannot highlight nope, zzz: not in the evaluation set")
    assert not (clustered.root / "animation.gif").exists() and not clustered.export_record.exists()


def test_loss_curve_and_epochs_from_trainer_state_without_log_csv(clustered):
    clustered.log_csv.unlink()
    scene = build_scene(load_analysis(clustered))
    assert scene.loss is None and "epoch" not in scene.titles[-1]
    history = [{"step": s, "epoch": s / 10, "loss": 2.0 / s} for s in range(1, 21)]
    history.append({"step": 20, "epoch": 2.0, "train_loss": 0.5, "train_runtime": 3.0})  # the summary row
    for step in (10, 20):
        clustered.checkpoint_path(step).mkdir()
        (clustered.checkpoint_path(step) / "trainer_state.json").write_text(
            json.dumps({"log_history": history[: step + (step == 20)]})
        )
    scene = build_scene(load_analysis(clustered))
    steps, loss = scene.loss
    assert steps.tolist() == list(range(1, 21)) and loss[0] == 2.0  # the newest checkpoint's history
    assert "epoch 2.00" in scene.titles[-1] and "epoch 1.00" in scene.titles[1]


def test_scores_in_significant_digits_in_analyze_and_status(clustered):
    analysis = load_analysis(clustered)
    worst = int(analysis.top(-1, 1)[0])
    table = format_table(analysis).splitlines()
    assert table[-1].endswith(f"{analysis.ids[worst]} ({sig(analysis.scores[-1, worst])})")
    status = format_status(run_status(clustered))
    assert f"most atypical {analysis.ids[worst]} ({sig(analysis.scores[-1, worst])})" in status


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fps=0.001), "fps 0.001 is out of range for GIF; use --fps between 0.01 and 50"),
        (dict(fps=0.001, out="a.mp4"), "fps 0.001 is out of range for MP4; use --fps between 0.01 and 240"),
        (dict(fps=1000, out="a.html"), "fps 1000 is out of range for HTML; use --fps between 0.01 and 240"),
        (dict(size="70000x200"), "size 70000x200 is too large; width and height must each be 8192 pixels or less"),
    ],
)
def test_fps_and_size_out_of_range_are_one_line(clustered, kwargs, message):
    if "out" in kwargs:
        kwargs["out"] = clustered.root / kwargs["out"]
    with pytest.raises(ExportError) as e:
        export(clustered, quiet=True, **kwargs)
    assert str(e.value) == message
    args = ["export", str(clustered.root)] + [f"--{k}={v}" for k, v in kwargs.items()]
    assert cli_error(CliRunner().invoke(cli, args)) == f"Error: {message}"
    assert not clustered.export_record.exists()


@pytest.mark.parametrize("suffix, fmt", [(".GIF", "gif"), (".MP4", "mp4"), (".HTML", "html")])
def test_upper_case_suffixes_work(clustered, suffix, fmt):
    result = CliRunner().invoke(
        cli, ["export", str(clustered.root), "--out", str(clustered.root / f"A{suffix}"), "--size", "320x180", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {clustered.root / f'A{suffix}'} (3 frames)\n"
    assert json.loads(clustered.export_record.read_text())["format"] == fmt
    assert sorted(p.name for p in clustered.root.iterdir() if p.name.startswith(("A", ".tmp"))) == [f"A{suffix}"]


def test_one_frame_is_one_frame(tmp_path):
    run = make_synthetic_run(tmp_path / "one", steps=(0,))
    analyze(run, quiet=True)
    approve(run, by="test")
    result = CliRunner().invoke(cli, ["export", str(run.root), "--size", "320x180", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {run.root / 'animation.gif'} (1 frame)\n"
