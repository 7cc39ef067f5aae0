"""The spotreview Spotlight plugin's server side, on real Spotlight servers: what a review tells
its server, the routes' answers, and every bad request answered with one line and nothing
written (bad ids, huge reasons, wrong content, another site, concurrent clicks, a read-only
run, a bundle). The page itself is driven in Chromium by tests/test_plugin_browser.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import read_json

from spotreview.analysis.store import load_analysis
from spotreview.errors import ReviewError
from spotreview.rendering import style
from spotreview.rendering.figure import scatter_box_px
from spotreview.reviewing.approval import approval_preview, approval_status
from spotreview.reviewing.bundle import decisions_path, write_bundle
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.layouts import (
    EXCLUDE_COLUMNS,
    EXCLUDE_LENS,
    SNAPSHOTS_PLOT,
    SNAPSHOTS_WIDGET,
    default_layout,
    import_spotlight,
    layout_columns,
    layout_json,
    layout_widgets,
    load_layout,
)
from spotreview.reviewing.review import start_review
from spotreview.reviewing.served import ENV, Served, served_from_env, served_record, serving
from spotreview.rundir.exclusions import change_exclusions, read_exclusions
from spotreview.rundir.run import Run

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "renumics" / "spotlight_plugins" / "spotreview"


# --- helpers ------------------------------------------------------------------------------------


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def post(url: str, body=None, *, raw: bytes | None = None, content_type="application/json", headers=None):
    """(status, answer) of a POST to a plugin route."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def sources(dest: Path) -> Path:
    """A copy of what building the package reads, at ``dest``."""
    import shutil

    for package in ("spotreview", "renumics"):
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


def digests(root: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def served(_analysed_template, tmp_path_factory):
    """A review of an analysed run on a real Spotlight server: (run, URL of the plugin's routes)."""
    import shutil

    root = tmp_path_factory.mktemp("plugin") / "run"
    shutil.copytree(_analysed_template.root, root)
    run = Run(root)
    with start_review(run, open_browser=False, quiet=True) as live:
        yield run, live.url + "api/spotreview/"


@pytest.fixture
def review(served):
    """``served`` with no exclusions and no approval before each test."""
    run, api = served
    change_exclusions(run, clear=True)
    run.approval.unlink(missing_ok=True)
    return run, api


# --- the record a review leaves for its server ------------------------------------------------


def test_a_review_tells_its_server_and_nothing_else(analysed_run, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with start_review(analysed_run, open_browser=False, quiet=True) as live:
        assert ENV not in os.environ  # set only while the server starts
        state = get(live.url + "api/spotreview/state")
    assert state["active"] is True and state["kind"] == "run" and state["writes"] is True
    assert state["name"] == str(analysed_run.root) and state["snapshots"] == len(analysed_run.snapshots())


def test_served_record_and_its_errors(analysed_run, tmp_path):
    from spotreview.reviewing.sources import RunSource

    source = RunSource(analysed_run)
    local = served_record(source, layout=None, host="127.0.0.1", insecure=False)
    assert local == Served(str(analysed_run.root.resolve()), "eval", None, None, True, "")
    far = served_record(source, layout=tmp_path / "l.json", host="10.0.0.5", insecure=False)
    assert far.writes is False and "--insecure" in far.read_only and far.layout == str(tmp_path / "l.json")
    assert served_record(source, layout=None, host="0.0.0.0", insecure=True).writes is True

    with serving(local):
        assert served_from_env() == local
    assert served_from_env({}) is None
    for text in ("{", "[]", '{"run": null}', json.dumps({**local.__dict__, "bundle": "x.zip"})):
        with pytest.raises(ReviewError) as e:
            served_from_env({ENV: text})
        assert "\n" not in str(e.value) and ENV in str(e.value)


# --- reading ------------------------------------------------------------------------------------


def test_state_of_a_run(review):
    run, api = review
    exclude(run, ["img-0003"], reason="smudge")
    state = get(api + "state")
    assert (state["kind"], state["training"], state["approval"], state["exclusions"]) == (
        "run",
        "finished",
        "missing",
        1,
    )
    assert state["steps"] == [0, 100] and state["snapshots"] == 5
    assert "spotreview approve" in state["approval_message"] and state["read_only"] == ""


def test_the_page_modules_and_nothing_else(review):
    run, api = review
    for module in sorted(p.name for p in (PLUGIN_DIR / "frontend").glob("*.js") if p.name != "main.js"):
        with urllib.request.urlopen(api + "frontend/" + module, timeout=30) as r:
            assert r.headers["Content-Type"].startswith("text/javascript"), module
            assert r.read() == (PLUGIN_DIR / "frontend" / module).read_bytes()
    for name in ("main.js", "routes.py", "..%2Froutes.py", "..%2F..%2F..%2Fspotreview%2F__init__.py", "Lens.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(api + "frontend/" + name, timeout=30)
        assert e.value.code == 404, name


def test_snapshots_are_the_analysis_drawn_as_the_export_draws_it(review):
    run, api = review
    data = get(api + "snapshots")
    a = load_analysis(run)
    coords = np.frombuffer(base64.b64decode(data["coords"]), dtype="<f4").reshape(data["shape"])
    np.testing.assert_array_equal(coords, a.coords)  # bit for bit: float32 either way
    assert data["ids"] == a.ids and data["labels"] == a.labels.tolist() and data["steps"] == a.steps.tolist()
    assert data["colors"] == style.class_hex(len(a.class_names))
    assert data["limits"] == list(style.axis_limits(a.coords, scatter_box_px()))
    assert sorted(data["order"]) == list(range(len(a.ids)))


# --- writing ------------------------------------------------------------------------------------


def test_exclude_and_keep_through_the_route(review):
    run, api = review
    status, answer = post(api + "exclude", {"ids": ["img-0001", "img-0002"], "reason": "  blurry "})
    assert status == 200, answer
    assert answer["excluded"] == {"img-0001": "blurry", "img-0002": "blurry"} and answer["exclusions"] == 2
    assert read_json(run.exclusions) == {"img-0001": "blurry", "img-0002": "blurry"}
    # the same file `spotreview exclude` writes for the same request
    written = run.exclusions.read_bytes()
    change_exclusions(run, clear=True)
    exclude(run, ["img-0001", "img-0002"], reason="blurry")
    assert run.exclusions.read_bytes() == written

    status, answer = post(api + "exclude", {"ids": ["img-0002"], "exclude": False})
    assert status == 200 and answer["kept"] == ["img-0002"] and answer["exclusions"] == 1
    assert read_exclusions(run) == {"img-0001": "blurry"}
    assert post(api + "exclude", {"ids": ["img-0003"]})[1]["excluded"] == {"img-0003": ""}  # no reason: ""


def test_approve_through_the_route(review):
    run, api = review
    exclude(run, ["img-0004"], reason="duplicate")
    status, answer = post(api + "approve", {"by": "ana"})
    assert status == 200, answer
    record = read_json(run.approval)
    assert record["by"] == answer["by"] == "ana" and record["exclusions"] == {"img-0004": "duplicate"}
    assert record["digest"] == approval_preview(run).digest  # what `spotreview approve` records
    assert approval_status(run).approved
    assert get(api + "state")["approval"] == "approved"


HUGE = "x" * 10_000

BAD_EXCLUDES = [
    # (request, status, words in the answer)
    ({"ids": ["img-9999"], "reason": "r"}, 400, "unknown image id"),
    ({"ids": ["img-0001", "../../etc/passwd"]}, 400, "unknown image id"),
    ({"ids": "img-0001"}, 400, "non-empty list"),
    ({"ids": []}, 400, "non-empty list"),
    ({}, 400, "non-empty list"),
    ({"ids": [1]}, 400, "image ids"),
    ({"ids": [None]}, 400, "image ids"),
    ({"ids": [HUGE]}, 400, "10,000 characters"),
    ({"ids": ["img-0001"], "reason": HUGE}, 400, "at most 500"),
    ({"ids": ["img-0001"], "reason": "two\nlines"}, 400, "control characters"),
    ({"ids": ["img-0001"], "reason": 5}, 400, "must be text"),
    ({"ids": ["img-0001"], "exclude": "yes"}, 400, "true or false"),
    ({"ids": ["img-0001"], "path": "/tmp/x"}, 400, "unknown field"),
    (["img-0001"], 400, "JSON object"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_EXCLUDES)
def test_bad_exclude_requests_are_one_line_and_write_nothing(review, body, status, words):
    run, api = review
    before = digests(run.root)
    got, answer = post(api + "exclude", body)
    assert (got, list(answer)) == (status, ["detail"]), answer
    assert words in answer["detail"] and "\n" not in answer["detail"]
    assert digests(run.root) == before


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"raw": b"{not json"}, 400, "not valid JSON"),
        ({"raw": b"\xff\xfe"}, 400, "not valid JSON"),
        ({"raw": b"[" * 100_000}, 400, "not valid JSON"),
        ({"raw": b'{"ids": ["img-0001"]}', "content_type": "text/plain"}, 415, "application/json"),
        ({"raw": b"ids=img-0001", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"body": {"ids": ["img-0001"]}, "headers": {"Origin": "http://evil.example"}}, 403, "another site"),
        ({"raw": b" " * (8 * 2**20 + 1)}, 413, "larger than 8 MiB"),
    ],
)
def test_requests_that_are_not_json_from_this_page_are_refused(review, kwargs, status, words):
    run, api = review
    before = digests(run.root)
    for route in ("exclude", "approve"):
        got, answer = post(api + route, **kwargs)
        assert got == status and words in answer["detail"], (route, answer)
    assert digests(run.root) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"by": ""}, "is empty"),
        ({"by": "   "}, "is empty"),
        ({}, "must be text, got null"),
        ({"by": ["ana"]}, "must be text"),
        ({"by": "x" * 101}, "at most 100"),
        ({"by": "ana\r\nX-Injected: 1"}, "control characters"),
        ({"by": "ana", "layout": "/etc/passwd"}, "unknown field"),
    ],
)
def test_bad_approvals_are_one_line_and_write_nothing(review, body, words):
    run, api = review
    before = digests(run.root)
    status, answer = post(api + "approve", body)
    assert status == 400 and words in answer["detail"] and "\n" not in answer["detail"], answer
    assert digests(run.root) == before


def test_concurrent_clicks_lose_nothing(review):
    """Many clicks at once (one thread each): every exclusion lands, the file stays JSON."""
    run, api = review
    ids = [f"img-{i:04d}" for i in range(24)]
    answers = []
    start = threading.Barrier(len(ids))

    def click(image_id):
        start.wait()
        answers.append(post(api + "exclude", {"ids": [image_id], "reason": f"r{image_id}"}))

    threads = [threading.Thread(target=click, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [s for s, _ in answers] == [200] * len(ids)
    assert read_exclusions(run) == {i: f"r{i}" for i in ids}


def test_a_read_only_run_answers_one_line_and_stays_unchanged(review):
    from test_table import read_only

    run, api = review
    before = digests(run.root)
    with read_only(run.root):
        assert get(api + "state")["exclusions"] == 0  # reading needs no writing
        for route, body in (("exclude", {"ids": ["img-0001"]}), ("approve", {"by": "ana"})):
            status, answer = post(api + route, body)
            assert status == 400 and "read-only" in answer["detail"] and "\n" not in answer["detail"], answer
    assert digests(run.root) == before


def test_writes_refused_when_the_review_may_not_write(analysed_run):
    """A server told its page may not write (a non-local host without --insecure) answers 403."""
    import pandas as pd

    record = Served(str(analysed_run.root), "eval", None, None, False, "the review serves 10.0.0.5 without --insecure")
    spotlight = import_spotlight()
    with serving(record):
        viewer = spotlight.show(pd.DataFrame({"id": ["img-0001"]}), no_browser=True, wait=False)
    try:
        api = viewer.url + "api/spotreview/"
        assert get(api + "state")["writes"] is False
        for route, body in (("exclude", {"ids": ["img-0001"]}), ("approve", {"by": "ana"})):
            status, answer = post(api + route, body)
            assert status == 403 and "read-only: the review serves 10.0.0.5" in answer["detail"], answer
    finally:
        viewer.close()
    assert not analysed_run.exclusions.exists() and not analysed_run.approval.exists()


def test_a_bundle_takes_exclusions_in_its_decisions_file(analysed_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundle = write_bundle(analysed_run, tmp_path / "review.zip")
    run_before = digests(analysed_run.root)
    with start_review(bundle, open_browser=False, quiet=True) as live:
        api = live.url + "api/spotreview/"
        state = get(api + "state")
        assert (state["kind"], state["exclusions"], state["decisions"]) == ("bundle", 0, str(decisions_path(bundle)))
        assert get(api + "snapshots")["available"] is False

        ids = [f"img-{i:04d}" for i in range(12)]
        threads = [threading.Thread(target=post, args=(api + "exclude", {"ids": [i], "reason": "seen"})) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert read_json(decisions_path(bundle))["exclusions"] == {i: "seen" for i in ids}

        before = digests(tmp_path / "cache")
        status, answer = post(api + "approve", {"by": "ana"})
        assert status == 400 and "bundle" in answer["detail"] and "spotreview approve RUN" in answer["detail"]
        status, answer = post(api + "exclude", {"ids": ["not-in-the-bundle"]})
        assert status == 400 and "unknown image id" in answer["detail"]
        assert digests(tmp_path / "cache") == before
        assert get(api + "state")["exclusions"] == len(ids)
    assert digests(analysed_run.root) == run_before  # the run is never touched


# --- layout and packaging ----------------------------------------------------------------------


def test_default_layout_plays_the_snapshots_and_excludes_with_the_plugin():
    widgets = {w.name: w for w in layout_widgets(default_layout(plugin=True))}
    assert widgets[SNAPSHOTS_PLOT].type == SNAPSHOTS_WIDGET
    inspector = next(w for w in widgets.values() if w.type == "inspector")
    lenses = [(v.type, v.columns) for v in inspector.config.lenses]
    assert lenses[:2] == [("ImageView", ["image"]), (EXCLUDE_LENS, list(EXCLUDE_COLUMNS))]
    assert set(EXCLUDE_COLUMNS) <= layout_columns(default_layout(plugin=True))
    without = {w.type for w in layout_widgets(default_layout(plugin=False))}
    assert SNAPSHOTS_WIDGET not in without


def test_a_layout_with_the_player_loads_only_where_the_plugin_is(tmp_path, monkeypatch):
    from spotreview.reviewing import layouts

    path = tmp_path / "team.json"
    path.write_text(layout_json(default_layout(plugin=True)))
    assert load_layout(path) == default_layout(plugin=True)
    monkeypatch.setattr(layouts, "plugin_available", lambda: False)
    with pytest.raises(ReviewError) as e:
        load_layout(path)
    assert str(e.value) == (
        f"layout file {path} has the {SNAPSHOTS_WIDGET} widget, but the spotreview Spotlight plugin "
        "(renumics.spotlight_plugins.spotreview) is not installed; "
        "reinstall spotreview (`pip install -e .` in a checkout)"
    )
    assert SNAPSHOTS_WIDGET not in layout_json(default_layout())


def test_the_plugin_is_found_by_spotlight_and_costs_nothing_to_load():
    """Spotlight imports every plugin in every server: ours imports nothing of spotreview then."""
    code = (
        "import sys, pkgutil, renumics.spotlight_plugins as ns;"
        "assert 'spotreview' in [m.name for m in pkgutil.iter_modules(ns.__path__)];"
        "import renumics.spotlight_plugins.spotreview as p; assert callable(p.__activate__);"
        "assert not [m for m in sys.modules if m == 'spotreview' or m.startswith('spotreview.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (PLUGIN_DIR / "frontend" / "main.js").is_file()


def test_an_editable_install_puts_the_checkout_on_the_servers_path(monkeypatch):
    """Where Spotlight's folder listing misses the plugin (an editable install maps modules,
    not folders), the server gets the checkout beside the spotreview package on its path."""
    from spotreview.reviewing import served as S

    monkeypatch.setattr(S, "_spotlight_finds_plugin", lambda: True)
    assert S.plugin_extra_path() is None and S.plugin_available()
    monkeypatch.setattr(S, "_spotlight_finds_plugin", lambda: False)
    assert S.plugin_extra_path() == str(REPO) and S.plugin_available()
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    record = Served(None, "eval", "/x.zip", None, True, "")
    with serving(record):
        assert os.environ["PYTHONPATH"] == os.pathsep.join((str(REPO), "/elsewhere"))
    assert os.environ["PYTHONPATH"] == "/elsewhere" and ENV not in os.environ


@pytest.mark.slow
def test_a_plain_editable_install_loads_the_plugin(tmp_path, _analysed_template):
    """``pip install -e .`` (setuptools' default editable mode), nothing on PYTHONPATH: a review's
    server loads the plugin. The new environment sees this one's packages through a path file."""
    import shutil
    import site

    source = sources(tmp_path / "src")
    run = shutil.copytree(_analysed_template.root, tmp_path / "run")  # the review writes its table there
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation",
         "-e", str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0 and "No module named pip" in done.stderr:
        pytest.skip("no pip in this environment")
    assert done.returncode == 0, done.stderr[-2000:]
    code = (
        "import json, sys, urllib.request; from spotreview.reviewing.review import start_review;"
        "import spotreview; assert spotreview.__file__.startswith(sys.argv[2]), spotreview.__file__;"
        "s = start_review(sys.argv[1], open_browser=False, quiet=True);"
        "print(json.load(urllib.request.urlopen(s.url + 'api/spotreview/state'))['active']); s.close()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [python, "-c", code, str(run), str(source)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]


def test_spotreview_never_imports_the_plugin():
    import grimp

    graph = grimp.build_graph("spotreview", cache_dir=None)
    assert not [m for m in graph.modules if "spotlight_plugins" in m]
    for module in graph.modules:
        assert not any("spotlight_plugins" in i for i in graph.find_modules_directly_imported_by(module)), module


@pytest.mark.slow
def test_the_wheel_ships_the_plugin_and_its_page(tmp_path):
    """``pip install`` of the wheel puts the plugin where Spotlight looks, with main.js."""
    import zipfile

    source = sources(tmp_path / "src")  # a copy: building leaves build/ and *.egg-info beside the sources
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "No module named pip" in done.stderr:
        pytest.skip("no pip in this environment")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("spotreview-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(REPO).as_posix() for p in PLUGIN_DIR.rglob("*") if p.suffix in (".py", ".js")]
    assert len(shipped) >= 10 and "renumics/spotlight_plugins/spotreview/frontend/main.js" in shipped
    assert set(shipped) <= names, set(shipped) - names
    # namespace packages stay namespaces: no __init__.py of Spotlight's is shipped or replaced
    assert not {"renumics/__init__.py", "renumics/spotlight_plugins/__init__.py"} & names
    assert not [
        n for n in names if n.startswith("renumics/") and not n.startswith("renumics/spotlight_plugins/spotreview/")
    ]
