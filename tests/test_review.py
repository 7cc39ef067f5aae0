"""Review: layouts, exclusions, approval and status, and a real Spotlight server."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli_error, make_synthetic_run

from spotreview.analysis.analyze import analyze
from spotreview.cli import cli
from spotreview.errors import AnalysisError, ReviewError
from spotreview.reviewing.approval import approval_preview, approval_status, approve
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.layouts import (
    FIRST_PLOT,
    LAST_PLOT,
    default_layout,
    layout_json,
    layout_widgets,
    load_layout,
)
from spotreview.reviewing.review import ReviewResult, review
from spotreview.rundir.exclusions import read_exclusions

REPO = Path(__file__).resolve().parents[1]
KNOWN = "ConfusionMatrix, IssuesWidget, Metric, histogram, inspector, scatterplot, similaritymap, table, wordcloud"


@pytest.fixture
def analysed(analysed_run):
    return analysed_run  # a copy per test: the server test excludes rows


@pytest.fixture
def fresh(tmp_path):
    run = make_synthetic_run(tmp_path / "run", steps=(0, 10, 100))
    analyze(run, quiet=True)
    return run


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# --- layouts -----------------------------------------------------------------------------


def test_committed_layout_is_the_default_layout():
    """layouts/review.json is `spotreview layout save` of default_layout(); they never drift."""
    committed = (REPO / "layouts" / "review.json").read_text(encoding="utf-8")
    assert committed == layout_json(default_layout())
    assert load_layout(REPO / "layouts" / "review.json") == default_layout()


def test_default_layoutlayout_widgets():
    # Spotlight's own widgets; what the spotreview plugin adds: tests/test_plugin.py
    widgets = {w.name: w for w in layout_widgets(default_layout(plugin=False))}
    assert {w.type for w in widgets.values()} == {"scatterplot", "inspector", "table", "histogram", "IssuesWidget"}
    for name, which in ((FIRST_PLOT, "first"), (LAST_PLOT, "last")):
        config = widgets[name].config
        assert (config.x_column, config.y_column) == (f"pca_{which}_x", f"pca_{which}_y")
        assert config.color_by_column == "label"
    inspector = next(w for w in widgets.values() if w.type == "inspector")
    assert ("ImageView", ["image"]) in [(v.type, v.columns) for v in inspector.config.lenses]
    hist = {w.config.column for w in widgets.values() if w.type == "histogram"}
    assert hist == {"outlier_score_first", "outlier_score_last", "label_quality_last", "outlier_status"}
    views = {v.columns[0]: (v.type, v.name) for v in inspector.config.lenses}
    assert views["outlier_rank_trajectory"][0] == views["outlier_score_trajectory"][0] == "SequenceView"
    assert views["summary"][0] == "MarkdownLens"  # named values: a scalar lens shows no title
    assert views["outlier_rank_trajectory"][1] == "outlier rank over training (1 = most atypical)"
    assert all(name for _, name in views.values())  # every lens says what it shows
    assert set(views) == {"image", "summary", "outlier_rank_trajectory", "outlier_score_trajectory"}
    issues = widgets["likely mislabelled first"].config
    assert issues.sort_by_columns == [["label_quality_last", "ASC"]]


def test_default_layout_leaves_out_columns_the_table_lacks():
    from spotreview.reviewing.layouts import layout_columns

    full = layout_columns(default_layout())
    no_probs = {"prediction_last", "label_quality_last", "is_label_issue_last"}
    assert no_probs <= full
    assert layout_columns(default_layout(full - no_probs)) <= full - no_probs
    assert {"pca_last_x", "outlier_rank_trajectory", "outlier_status"} <= layout_columns(
        default_layout(full - no_probs)
    )


def test_layout_naming_missing_columns(analysed, tmp_path):
    layout = json.loads(layout_json(default_layout()))
    layout["children"][0]["children"][0]["children"][0]["config"]["colorBy"] = "species"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(layout))
    result = invoke("review", str(analysed.root), "--layout", str(path), "--no-browser", "--timeout", "1")
    assert cli_error(result) == (
        f"Error: layout {path} names column(s) the review table does not have: species; "
        "edit the layout or start from `spotreview layout save FILE`"
    )


def test_layout_save_command(tmp_path):
    path = tmp_path / "team.json"
    result = invoke("layout", "save", path)
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == layout_json(default_layout())
    path.write_text("edited by a teammate")
    result = invoke("layout", "save", path)
    assert result.exit_code == 1
    assert result.output == f"Error: {path} already exists; pass --force to overwrite it\n"
    assert path.read_text() == "edited by a teammate"
    assert invoke("layout", "save", path, "--force").exit_code == 0
    assert path.read_text(encoding="utf-8") == layout_json(default_layout())


def test_layout_saved_from_spotlight_ui_loads(tmp_path):
    """The shape Spotlight's "Save Layout" writes (frontend aliases, extra config keys)."""
    ui = {
        "orientation": "horizontal",
        "children": [
            {
                "kind": "split",
                "weight": 1,
                "orientation": "vertical",
                "children": [
                    {
                        "kind": "tab",
                        "weight": 1,
                        "children": [
                            {
                                "kind": "widget",
                                "name": "",
                                "type": "scatterplot",
                                "config": {
                                    "xAxisColumn": "pca_last_x",
                                    "yAxisColumn": "pca_last_y",
                                    "colorBy": "label",
                                    "someFrontendOnlyKey": 3,
                                },
                            },
                            {"kind": "widget", "name": "t", "type": "table", "config": {}},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "spotlight-layout.json"
    path.write_text(json.dumps(ui))
    widgets = list(layout_widgets(load_layout(path)))
    assert [w.type for w in widgets] == ["scatterplot", "table"]
    assert widgets[0].config.x_column == "pca_last_x"
    from spotreview.reviewing.layouts import check_layout_columns, layout_columns

    assert layout_columns(load_layout(path)) == {"pca_last_x", "pca_last_y", "label"}
    check_layout_columns(load_layout(path), ["pca_last_x", "pca_last_y", "label", "id"], path)


def test_layout_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ReviewError) as e:
        load_layout(missing)
    assert str(e.value) == (
        f"layout file {missing} not found; write the default with `spotreview layout save {missing}`"
    )

    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(ReviewError) as e:
        load_layout(bad_json)
    assert str(e.value) == (
        f"layout file {bad_json} is not valid JSON "
        f"(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )

    not_layout = tmp_path / "list.json"
    not_layout.write_text('{"children": 3}')
    with pytest.raises(ReviewError) as e:
        load_layout(not_layout)
    assert str(e.value) == (
        f"layout file {not_layout} is not a Spotlight layout: children: Input should be a "
        f"valid list (1 problem(s)); start from `spotreview layout save FILE`"
    )

    unknown = tmp_path / "unknown.json"
    tab = {"kind": "tab", "children": [{"kind": "widget", "type": "bogus"}, {"type": "table"}]}
    unknown.write_text(json.dumps({"children": [tab]}))
    with pytest.raises(ReviewError) as e:
        load_layout(unknown)
    assert str(e.value) == (f"layout file {unknown} has unknown widget type(s) 'bogus'; Spotlight knows {KNOWN}")


def test_review_command_bad_input(analysed, tmp_path, synthetic_run):
    root = synthetic_run.root
    result = invoke("review", root, "--no-browser", "--timeout", 1)
    assert result.exit_code == 1
    assert result.output == f"Error: {root} has no analysis; run `spotreview analyze {root}` first\n"

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    result = invoke("review", analysed.root, "--no-browser", "--layout", bad, "--timeout", 1)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: layout file {bad} is not valid JSON (")
    assert len(result.output.splitlines()) == 1


def test_port_in_use(analysed):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = (
            f"port {port} on 127.0.0.1 is already in use; pick another with --port (or leave --port out for a free one)"
        )
        with pytest.raises(ReviewError) as e:
            review(analysed, port=port, open_browser=False, timeout=1, quiet=True)
        assert str(e.value) == message
        result = invoke("review", analysed.root, "--port", port, "--no-browser", "--timeout", 1)
        assert (result.exit_code, result.output) == (1, f"Error: {message}\n")


@pytest.mark.slow  # starts Spotlight (~5 s)
def test_ctrl_c_during_a_review_ends_it_and_restores_the_handler(analysed):
    """Ctrl-C asks the session to stop instead of raising wherever the main thread is (raised
    inside a child process's after-fork callback, CPython loses it); review() then returns."""
    before, port, sent = signal.getsignal(signal.SIGINT), _free_port(), []

    def press_ctrl_c():  # once Spotlight serves, as a user would
        _until(lambda: _get_json(f"http://127.0.0.1:{port}/api/layout/"), 60, "Spotlight")
        time.sleep(0.5)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    result = review(analysed, port=port, open_browser=False, timeout=60, quiet=True, poll=0.2)
    assert result.ended == "interrupted" and time.monotonic() - sent[0] < 20
    assert isinstance(result, ReviewResult) and (result.bundle, result.decisions) == (None, None)
    assert result.url == f"http://127.0.0.1:{port}/" and result.layout is None
    assert signal.getsignal(signal.SIGINT) is before


def test_analytics_off_unless_opted_in(monkeypatch):
    from renumics.spotlight.settings import settings

    from spotreview.reviewing.review import _analytics_choice

    for key in ("SPOTLIGHT_OPT_OUT", "SPOTLIGHT_OPT_IN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(settings, "opt_out", False)
    monkeypatch.setattr(settings, "opt_in", True)

    # Importing the layouts and building one (what `layout save`, `approve --layout` and a
    # bundle do) leave the environment alone; it is set only while a review is served.
    code = (
        "import os; before = dict(os.environ); import spotreview.reviewing.layouts as L;"
        "L.default_layout(); assert dict(os.environ) == before"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

    with _analytics_choice(False):
        assert (os.environ["SPOTLIGHT_OPT_OUT"], os.environ["SPOTLIGHT_OPT_IN"]) == ("true", "false")
        assert (settings.opt_out, settings.opt_in) == (True, False)
    assert "SPOTLIGHT_OPT_OUT" not in os.environ and "SPOTLIGHT_OPT_IN" not in os.environ
    assert (settings.opt_out, settings.opt_in) == (False, True)  # restored: nothing leaks
    with _analytics_choice(True):
        assert os.environ["SPOTLIGHT_OPT_OUT"] == "false" and settings.opt_out is False


# --- exclusions --------------------------------------------------------------------------


def test_exclude_and_clear(synthetic_run):
    run = synthetic_run
    done = exclude(run, ["img-0001", "img-0002"], reason="blurry")
    assert done.exclusions == {
        "img-0001": "blurry",
        "img-0002": "blurry",
    }
    assert (done.where, done.bundle) == (run.root, False)
    exclude(run, ["img-0003"])
    assert read_exclusions(run) == {"img-0001": "blurry", "img-0002": "blurry", "img-0003": ""}
    assert exclude(run, ["img-0002"], clear=True).exclusions == {"img-0001": "blurry", "img-0003": ""}
    assert exclude(run, [], clear=True).exclusions == {}
    assert read_exclusions(run) == {}


def test_exclude_errors(synthetic_run):
    run, root = synthetic_run, synthetic_run.root
    exclude(run, ["img-0001"], reason="kept")
    with pytest.raises(ReviewError) as e:
        exclude(run, ["img-0002", *(f"nope-{i}" for i in range(7))])
    assert str(e.value) == (
        f"7 unknown image id(s) for {root}: nope-0, nope-1, nope-2, nope-3, nope-4 (+2 more); "
        f"use ids from the review table's `id` column (or {root / 'eval.csv'})"
    )
    assert read_exclusions(run) == {"img-0001": "kept"}  # nothing half-applied
    with pytest.raises(ReviewError) as e:
        exclude(run, [])
    assert str(e.value) == (
        "give at least one image id to exclude (ids are in the review table's `id` column), "
        "or --clear to remove all exclusions"
    )


def test_exclude_command(synthetic_run):
    root = synthetic_run.root
    result = invoke("exclude", root, "img-0001", "img-0002", "--reason", "mislabelled")
    assert result.exit_code == 0, result.output
    assert result.output == f"excluded 2; 2 image(s) now excluded in {root}\n"
    result = invoke("exclude", root, "img-0001", "--clear")
    assert result.output == f"cleared 1; 1 image(s) now excluded in {root}\n"
    assert read_exclusions(synthetic_run) == {"img-0002": "mislabelled"}
    result = invoke("exclude", root, "zzz")
    assert result.exit_code == 1
    assert result.output.startswith("Error: 1 unknown image id(s) for ")


# --- approval and status -----------------------------------------------------------------


def test_approve_records_who_when_and_what(fresh):
    record = approve(fresh)
    on_disk = json.loads(fresh.approval.read_text())
    assert on_disk == dataclasses.asdict(record)
    assert set(on_disk) == {"by", "at", "digest", "parts", "layout", "exclusions", "steps", "snapshots",
                            "spotreview_version"}  # fmt: skip
    assert record.by == getpass.getuser()
    assert record.at.endswith("+00:00")
    assert set(record.parts) == {"analysis", "exclusions", "layout", "class_names", "eval_set", "images", "loss_log"}
    assert len(record.digest) == 64 and record.layout is None
    assert record.steps == [0, 100] and record.exclusions == {}
    status = approval_status(fresh)
    assert status.state == "approved" and status.approved
    assert status.record == record
    assert status.message == f"approved by {record.by} at {record.at}"
    preview = approval_preview(fresh, by="bo")
    assert preview.at is None and preview.by == "bo"
    assert (preview.digest, preview.parts) == (record.digest, record.parts)
    assert json.loads(fresh.approval.read_text()) == on_disk  # a preview records nothing


def test_approval_goes_stale_and_says_why(fresh, tmp_path):
    root = fresh.root
    again = f"review and run `spotreview approve {root}` again"
    missing = approval_status(fresh)
    assert (missing.state, missing.record, missing.approved) == ("missing", None, False)
    assert missing.message == f"not approved; review it and run `spotreview approve {root}`"

    at = approve(fresh, by="ana").at
    analyze(fresh, quiet=True)  # the same analysis again: still approved
    assert approval_status(fresh).state == "approved"
    exclude(fresh, ["img-0004"], reason="duplicate")
    status = approval_status(fresh)
    assert status.state == "stale"
    assert status.message == f"stale: the exclusions changed since ana approved it at {at}; {again}"

    at = approve(fresh, by="ana").at
    analyze(fresh, align="previous", quiet=True)
    status = approval_status(fresh)
    assert status.message == f"stale: the analysis changed since ana approved it at {at}; {again}"

    layout = tmp_path / "team.json"
    layout.write_text(layout_json(default_layout()))
    record = approve(fresh, by="bo", layout=layout)
    assert record.layout == str(layout.resolve())
    # The default layout is identified by the spotreview version, a file by its content.
    assert record.parts["layout"] != approve(fresh, by="bo").parts["layout"]
    record = approve(fresh, by="bo", layout=layout)
    layout.write_text(layout.read_text().replace('"weight": 23', '"weight": 40', 1))
    status = approval_status(fresh)
    assert status.message == (f"stale: the layout changed since bo approved it at {record.at}; {again}")
    layout.unlink()
    status = approval_status(fresh)
    assert status.message == f"stale: the approved layout file {layout.resolve()} is gone; {again}"


def test_approve_needs_an_analysis(synthetic_run):
    root = synthetic_run.root
    with pytest.raises(AnalysisError) as e:
        approve(synthetic_run)
    assert str(e.value) == f"{root} has no analysis; run `spotreview analyze {root}` first"
    assert not synthetic_run.approval.exists()
    result = invoke("approve", root, "--yes")
    assert result.exit_code == 1
    assert result.output == f"Error: {root} has no analysis; run `spotreview analyze {root}` first\n"


def test_approve_and_status_commands(fresh):
    root = fresh.root
    exclude(fresh, ["img-0001"], reason="blurry")
    result = invoke("approve", root, "--by", "ana", "--yes")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Approving {root} for export:"
    assert lines[1].startswith("  analysis:   3 snapshot(s), steps 0 .. 100 (sha256 ")
    assert lines[2:5] == ["  exclusions: 1 (img-0001)", "  layout:     default layout", "  by:         ana"]
    assert lines[5].startswith("Approved by ana at ")

    result = invoke("status", root)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "snapshots:   3 (steps 0 .. 100)" in out
    assert "  first step 0 " in out and "  last  step 100 " in out
    assert "most atypical img-0035" in out  # the planted outlier, at the last snapshot
    assert "exclusions:  1" in out
    assert "approval:    approved by ana at " in out

    exclude(fresh, ["img-0002"])
    assert "approval:    stale: the exclusions changed since ana" in invoke("status", root).output


def test_status_without_analysis(synthetic_run):
    root = synthetic_run.root
    result = invoke("status", root)
    assert result.exit_code == 0
    assert result.output == (
        f"run:         {root}\n"
        f"snapshots:   5 (steps 0 .. 100)\n"
        f"analysis:    {root} has no analysis; run `spotreview analyze {root}` first\n"
        f"exclusions:  0\n"
        f"approval:    not approved; review it and run `spotreview approve {root}`\n"
    )


# --- a real Spotlight server -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _columns(url: str) -> dict:
    return {c["name"]: c for c in _get_json(url + "api/table/")["columns"]}


def _until(check, timeout: float, what: str):
    end = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.3)


def _server_env_ok(pid: int) -> bool:
    """The Spotlight server (a child of the CLI process) runs with analytics opted out."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        pytest.skip("no /proc to inspect the server process")
    pids = children.read_text().split()
    envs = [Path(f"/proc/{p}/environ").read_bytes().split(b"\0") for p in pids]
    return any(b"SPOTLIGHT_OPT_OUT=true" in env for env in envs)


@pytest.mark.slow
def test_real_spotlight_server_serves_the_table_and_shows_exclusions(analysed):
    """`spotreview review` as users run it; Ctrl-C (SIGINT) ends it; no mocks."""
    root, port = analysed.root, _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTLIGHT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotreview", "review", str(root), "--no-browser",
         "--port", str(port), "--timeout", "300", "--embeddings"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        _until(lambda: any(url in line for line in lines), 120, "the review URL")
        cols = _columns(url)
        dtypes = {name: c["dtype"]["name"] for name, c in cols.items()}
        assert dtypes["image"] == "Image"
        for name in ("label", "prediction_first", "prediction_last"):
            assert dtypes[name] == "Category"
            assert set(cols[name]["dtype"]["categories"]) == {"cat", "dog", "frog"}
        for name in ("pca_first_x", "pca_first_y", "pca_last_x", "pca_last_y", "movement",
                     "outlier_score_first", "outlier_score_last"):  # fmt: skip
            assert dtypes[name] == "float"
        assert dtypes["outlier_rank_first"] == dtypes["outlier_rank_last"] == "int"
        assert (dtypes["exclude"], dtypes["exclude_reason"], dtypes["id"]) == ("bool", "str", "str")
        assert dtypes["embedding_last"] == "Embedding"  # --embeddings
        assert dtypes["outlier_rank_trajectory"] == dtypes["outlier_score_trajectory"] == "Sequence1D"
        assert not any(cols["exclude"]["values"])
        assert _server_env_ok(proc.pid)

        layout = _get_json(url + "api/layout/")
        assert FIRST_PLOT in json.dumps(layout) and "similaritymap" not in json.dumps(layout)

        excluded = subprocess.run(
            [sys.executable, "-m", "spotreview", "exclude", str(root), "img-0001", "img-0035",
             "--reason", "checked"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert excluded.returncode == 0, excluded.stderr

        def refreshed():
            cols = _columns(url)
            ids = cols["id"]["values"]
            return [ids[i] for i, x in enumerate(cols["exclude"]["values"]) if x] == [
                "img-0001",
                "img-0035",
            ] and cols

        cols = _until(refreshed, 30, "the running review to show the exclusions")
        reasons = dict(zip(cols["id"]["values"], cols["exclude_reason"]["values"]))
        assert reasons["img-0035"] == "checked" and reasons["img-0000"] == ""
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        reader.join(5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "review table refreshed (2 excluded)" in out
    assert "review ended (interrupted)" in out
    assert f"Not approved; approve it later with `spotreview approve {root}`" in out
    assert "Traceback" not in out
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_embeddings_need_the_embedding_files(analysed):
    analysed.embedding_path(100).unlink()
    line = cli_error(invoke("review", str(analysed.root), "--embeddings", "--no-browser", "--timeout", "1"))
    assert line.startswith("Error: ") and f"spotreview analyze {analysed.root}" in line


def test_any_class_names_become_explicit_categories(tmp_path):
    """Numeric-looking, unicode and spaced names: each column gets every class as a category
    and every cell converts to its class's code (Spotlight infers none for "0".."9")."""
    from renumics.spotlight.dtypes.conversion import convert_to_dtype

    from spotreview.reviewing.sources import spotlight_dtypes
    from spotreview.reviewing.table import build_table

    names = ("0", "10", "chat noir", "Æble", "7")
    run = make_synthetic_run(tmp_path / "run", class_names=names, n_per_class=6)
    analyze(run, quiet=True)
    df = build_table(run, save=False)
    dtypes = spotlight_dtypes(df)
    for col in ("label", "prediction_first", "prediction_last"):
        assert dtypes[col].categories == {n: i for i, n in enumerate(names)}
        assert [convert_to_dtype(v, dtypes[col]) for v in df[col]] == [names.index(v) for v in df[col]]
    assert set(df["label"]) == set(names)
