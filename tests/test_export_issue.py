"""``export --highlight-issue NAME`` (rendering/rings.py): the names, the rings in every frame of
the GIF, the MP4 and the HTML player, exclusions, empty groups, runs without probabilities,
the approval and the command line."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner
from test_issues import _table

from spotreview.analysis.analyze import analyze
from spotreview.analysis.store import load_analysis
from spotreview.cli import cli
from spotreview.errors import ExportError
from spotreview.rendering import style
from spotreview.rendering.export import export
from spotreview.rendering.figure import Renderer
from spotreview.rendering.rings import ISSUE_NAMES, issue_key, issue_rings
from spotreview.rendering.scene import build_scene
from spotreview.reviewing.approval import approve
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.issues import TITLES, issue_groups
from spotreview.reviewing.table import build_table
from spotreview.rundir.atomic import save_npy

SIZE = (640, 360)  # the ring is 1 px wide here; at the smallest frame it is thinner than a pixel
S = 5  # snapshots in the synthetic run
ISSUE = "emerging-outliers"  # a group the synthetic run has: its planted outlier emerges
NAMES = ", ".join(ISSUE_NAMES)


@pytest.fixture
def run(analysed_run):
    approve(analysed_run, by="test")
    return analysed_run


@pytest.fixture
def warnings_logged(caplog):
    caplog.set_level(logging.WARNING, logger="spotreview")
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _ring_pixels(frame) -> np.ndarray:
    """(H, W) bool: pixels of the ring's magenta (anti-aliased against white or a point)."""
    f = np.asarray(frame)[..., :3].astype(int)
    return (f[..., 0] > 200) & (f[..., 2] > 200) & (f[..., 1] < 90)


def _expected_ids(run) -> list[str]:
    """The ids of the group, worst first, from the review table as `review` builds it."""
    table = build_table(run, save=False)
    group = next(g for g in issue_groups(table) if g.key == issue_key(ISSUE))
    return [table["id"][r] for r in group.rows if not table["exclude"][r]]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, key",
    [
        ("likely-mislabelled", "likely_mislabelled"),
        ("Likely_Mislabeled", "likely_mislabelled"),
        ("mislabelled", "likely_mislabelled"),
        ("hard-to-learn", "hard_to_learn"),
        ("hard to learn (data map)", "hard_to_learn"),
        ("FORGOTTEN", "forgotten"),
        ("learned only in the last quarter", "learned_late"),
        ("late", "learned_late"),
        ("persistent", "persistent_outliers"),
        ("emerging outliers", "emerging_outliers"),
        ("largest_movers", "largest_movers"),
    ],
)
def test_names_are_read_forgivingly(name, key):
    assert issue_key(name) == key


def test_unknown_and_ambiguous_names_are_one_line():
    with pytest.raises(ExportError) as e:
        issue_key("mislabelled-outliers")
    assert str(e.value) == f"unknown issue group 'mislabelled-outliers'; use one of: {NAMES}"
    with pytest.raises(ExportError) as e:
        issue_key("outliers")
    assert str(e.value) == (
        "issue group 'outliers' is ambiguous: it matches persistent-outliers and emerging-outliers; name one of them"
    )


def test_every_group_has_its_title_and_slug_in_order():
    groups = issue_groups(_table())
    assert [g.key for g in groups] == list(TITLES)  # the hand-made table has every group
    assert [g.title for g in groups] == list(TITLES.values())
    assert ISSUE_NAMES == tuple(g.key.replace("_", "-") for g in groups)
    assert all(issue_key(name) == g.key for name, g in zip(ISSUE_NAMES, groups))


# --- the rings, in every format --------------------------------------------------------------


def test_the_frame_rings_the_groups_images_above_the_points(run):
    analysis = load_analysis(run)
    issue = issue_rings(analysis, issue_key(ISSUE))
    assert [analysis.ids[r] for r in issue.rows] == _expected_ids(run)
    ringed = Renderer(build_scene(analysis, issue=issue))
    plain = Renderer(build_scene(analysis))
    for frame in (0, S - 1):
        picture = _ring_pixels(ringed.render(frame)).copy()
        assert not _ring_pixels(plain.render(frame)).any()
        height = picture.shape[0]
        radius = np.sqrt(style.ring_area(len(analysis.ids)) * 1.7) / 2 * ringed.scene.dpi / 72  # px
        for x, y in ringed.ax.transData.transform(analysis.coords[frame][issue.rows]):
            row, col = int(round(height - y)), int(round(x))
            near = picture[row - int(radius) - 3 : row + int(radius) + 4, col - int(radius) - 3 : col + int(radius) + 4]
            assert near.sum() > 5, (frame, x, y)
    legend = [t.get_text() for t in ringed.ax.get_legend().get_texts()]
    assert legend[-1] == f"emerging outliers ({len(issue.rows)})"


def test_gif_mp4_and_html_ring_it_in_every_frame(run):
    import imageio.v3 as iio
    from test_player import _data

    for suffix in (".gif", ".mp4"):
        done = export(run, run.root / f"a{suffix}", size=SIZE, tween=1, highlight_issue=ISSUE, quiet=True)
        counts = [int(_ring_pixels(frame).sum()) for frame in iio.imiter(done.out)]
        assert len(counts) == S + (S - 1) and min(counts) > 10, (suffix, counts)
        plain = export(run, run.root / f"p{suffix}", size=SIZE, quiet=True)
        assert all(not _ring_pixels(frame).any() for frame in iio.imiter(plain.out))
    done = export(run, run.root / "a.html", highlight_issue=ISSUE, quiet=True)
    _, doc = _data(done.path)
    analysis = load_analysis(run)
    assert [analysis.ids[r] for r in doc["issue"]["rows"]] == _expected_ids(run)
    assert doc["issue"]["title"] == "emerging outliers" and doc["issue"]["color"] == style.ISSUE_RING_COLOR
    _, plain = _data(export(run, run.root / "p.html", quiet=True).path)
    assert plain["issue"] is None


def test_approved_export_records_the_ringed_images_unforced(run):
    done = export(run, still=run.root / "s.png", size=SIZE, highlight_issue="Emerging", quiet=True)
    record = json.loads(run.export_record.read_text())
    assert record["forced"] is False and record["approval"]["state"] == "approved"
    assert record["highlight_issue"] == {
        "key": "emerging_outliers",
        "title": "emerging outliers",
        "ids": _expected_ids(run),
    }
    assert done.highlight_issue == record["highlight_issue"]
    assert export(run, still=run.root / "s.png", size=SIZE, quiet=True).highlight_issue is None


def test_the_approval_covers_what_the_rings_are_computed_from(run):
    """The groups come from the analysis and the probabilities it checked: a changed probability
    file makes the approval stale, so rings the reviewer never saw are never exported."""
    step = int(load_analysis(run).steps[-1])
    probs = np.load(run.probs_path(step))
    save_npy(run.probs_path(step), probs[:, ::-1].copy())  # every label now looks wrong
    with pytest.raises(ExportError, match=r"its approval is stale \(probabilities of step 100 changed"):
        export(run, still=run.root / "s.png", size=SIZE, highlight_issue="likely-mislabelled", quiet=True)
    assert not (run.root / "s.png").exists() and not run.export_record.exists()


def test_excluded_images_are_not_ringed(run):
    expected = _expected_ids(run)
    assert "img-0035" in expected  # the planted outlier emerges
    exclude(run, ["img-0035"], reason="test")
    approve(run, by="test")
    done = export(run, still=run.root / "s.png", size=SIZE, highlight_issue=ISSUE, quiet=True)
    assert done.highlight_issue["ids"] == [i for i in expected if i != "img-0035"]


def test_all_images_excluded_warns_and_draws_no_ring(run, warnings_logged):
    expected = _expected_ids(run)
    exclude(run, expected, reason="test")
    approve(run, by="test")
    done = export(run, still=run.root / "s.png", size=SIZE, highlight_issue=ISSUE, quiet=True)
    assert done.highlight_issue["ids"] == []
    assert warnings_logged() == [
        f"no image to ring for --highlight-issue {ISSUE} on {run.root}: all {len(expected)} of its images are "
        "excluded; exporting without issue rings"
    ]


def test_an_empty_group_warns_and_the_frame_is_the_plain_one(run, warnings_logged):
    from PIL import Image

    plain = export(run, still=run.root / "plain.png", size=SIZE, quiet=True).path
    done = export(run, still=run.root / "s.png", size=SIZE, highlight_issue="likely-mislabelled", quiet=True)
    assert done.highlight_issue == {"key": "likely_mislabelled", "title": "likely mislabelled", "ids": []}
    assert warnings_logged() == [
        f"no image to ring for --highlight-issue likely-mislabelled on {run.root}: the group 'likely mislabelled' "
        "is empty; exporting without issue rings"
    ]
    assert (np.asarray(Image.open(plain)) == np.asarray(Image.open(done.path))).all()


def test_a_run_without_probabilities(analysed_run, warnings_logged, tmp_path):
    from test_player import _data

    from spotreview.rendering.colouring import NO_PROBABILITIES
    from spotreview.rendering.player import player_data, write_player

    for step in analysed_run.snapshots():
        analysed_run.probs_path(step).unlink()
    analysis = analyze(analysed_run, quiet=True)
    assert analysis.predictions is None
    approve(analysed_run, by="test")
    done = export(analysed_run, still=tmp_path / "s.png", size=SIZE, highlight_issue="hard-to-learn", quiet=True)
    assert done.highlight_issue["ids"] == []
    assert warnings_logged()[-1] == (
        f"no image to ring for --highlight-issue hard-to-learn on {analysed_run.root}: the group needs the "
        "predicted probabilities of every snapshot, which this run lacks; exporting without issue rings"
    )
    _, doc = _data(write_player(tmp_path / "x.html", player_data(analysis, top_k=4)))
    assert [m["missing"] for m in doc["colour_by"]] == ["", NO_PROBABILITIES, NO_PROBABILITIES, NO_PROBABILITIES]
    assert doc["dynamics"] == ["neighbour_change"] and len(doc["points"][0]["dyn"]) == 1


# --- bad names, the command line ----------------------------------------------------------------


def test_unknown_name_writes_nothing(run):
    with pytest.raises(ExportError, match=f"^unknown issue group 'mislabeled-ish'; use one of: {NAMES}$"):
        export(run, highlight_issue="mislabeled-ish", quiet=True)
    result = CliRunner().invoke(cli, ["export", str(run.root), "--highlight-issue", "nope", "-q"])
    assert result.exit_code == 2 and "Invalid value for '--highlight-issue'" in result.output
    assert f"unknown issue group 'nope'; use one of: {NAMES}" in result.output
    assert not (run.root / "animation.gif").exists() and not run.export_record.exists()


def test_cli_rings_and_reports(run):
    args = ["export", str(run.root), "--still", str(run.root / "s.png"), "--size", "640x360"]
    result = CliRunner().invoke(cli, [*args, "--highlight-issue", "emerging_outliers"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"wrote {run.root / 's.png'}",
        f"ringed {len(_expected_ids(run))} images of the issue group 'emerging outliers'",
    ]
    ambiguous = CliRunner().invoke(cli, [*args, "--highlight-issue", "outliers"])
    assert ambiguous.exit_code == 2 and "matches persistent-outliers and emerging-outliers" in ambiguous.output


def test_cli_help_names_every_group():
    result = CliRunner().invoke(cli, ["export", "--help"], terminal_width=400)
    help_text = " ".join(result.output.split())
    assert all(name in help_text for name in ISSUE_NAMES)
