"""Review bundles: written from a run, moved elsewhere, served with every image, exclusions
made on the bundle applied back to the run; bad bundles and decisions get one line."""

from __future__ import annotations

import json
import shutil
import urllib.request
import zipfile

import pytest
from click.testing import CliRunner
from conftest import cli_error

from spotreview.cli import cli
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.table import read_table
from spotreview.rundir.atomic import sha256_file
from spotreview.rundir.exclusions import read_exclusions


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_bundle_contents_are_portable(analysed_run, tmp_path, cache):
    exclude(analysed_run, ["img-0001"], reason="blurry")
    out = tmp_path / "review.zip"
    result = invoke("bundle", analysed_run.root, "-o", out)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        text = b"".join(z.read(n) for n in names if not n.endswith(".png"))
    assert {"bundle.json", "review.parquet", "layout.json", "summary.json", "manifest.json",
            "exclusions.json"} <= names  # fmt: skip
    assert len([n for n in names if n.startswith("images/")]) == 36
    assert not any(n.endswith(".npy") or "checkpoint" in n for n in names)
    assert str(tmp_path).encode() not in text  # no absolute paths anywhere
    assert cli_error(invoke("bundle", analysed_run.root, "-o", out)) == (
        f"Error: {out} already exists; pass --force to overwrite it"
    )


@pytest.mark.slow
def test_bundle_moved_elsewhere_is_served_and_decisions_go_back(analysed_run, tmp_path, cache):
    from spotreview.reviewing.review import start_review

    made = tmp_path / "made" / "review.zip"
    made.parent.mkdir()
    assert invoke("bundle", analysed_run.root, "-o", made).exit_code == 0
    moved = tmp_path / "elsewhere" / "review.zip"
    moved.parent.mkdir()
    shutil.move(made, moved)
    digest = sha256_file(moved)

    result = invoke("exclude", moved, "img-0004", "img-0005", "--reason", "mislabelled")
    assert result.exit_code == 0, result.output
    decisions = moved.with_name("review.decisions.json")
    assert json.loads(decisions.read_text())["exclusions"] == {"img-0004": "mislabelled", "img-0005": "mislabelled"}
    assert sha256_file(moved) == digest  # the bundle itself is never changed

    with start_review(moved, open_browser=False, quiet=True) as session:
        api = json.load(urllib.request.urlopen(session.url + "api/table/", timeout=10))
        cols = {c["name"]: c for c in api["columns"]}
        assert set(cols["label"]["dtype"]["categories"]) == {"cat", "dog", "frog"}
        ids = cols["id"]["values"]
        assert [ids[i] for i, x in enumerate(cols["exclude"]["values"]) if x] == ["img-0004", "img-0005"]
        for row in (0, 35):  # images come from the extracted copy, wherever the zip is
            url = f"{session.url}api/table/image/{row}?generation_id={api['generation_id']}"
            assert urllib.request.urlopen(url, timeout=10).read()[:8] == b"\x89PNG\r\n\x1a\n"
        layout = json.load(urllib.request.urlopen(session.url + "api/layout/", timeout=10))
        assert "outlier_rank_trajectory" in json.dumps(layout)

    result = invoke("exclude", analysed_run.root, "--from", decisions)
    assert result.exit_code == 0, result.output
    assert read_exclusions(analysed_run) == {"img-0004": "mislabelled", "img-0005": "mislabelled"}
    extracted = next((cache / "spotreview" / "bundles").iterdir())
    assert not read_table(extracted / "review.parquet")["image"].str.startswith("/").any()


def test_bad_bundles_and_decisions(analysed_run, tmp_path, cache):
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    hint = "make one with `spotreview bundle RUN -o FILE.zip`"
    assert cli_error(invoke("review", not_zip, "--no-browser", "--timeout", "1")) == (
        f"Error: {not_zip} is not a spotreview bundle (not a zip file); {hint}"
    )
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("bundle.json", "{}")
        z.writestr("review.parquet", "")
        z.writestr("../../evil.txt", "x")
    assert cli_error(invoke("exclude", slip, "img-0001")) == (
        f"Error: {slip} is not a spotreview bundle (member '../../evil.txt' would be written "
        f"outside the bundle); {hint}"
    )
    assert not (tmp_path / "evil.txt").exists() and not (cache.parent / "evil.txt").exists()
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("bundle.json", "{}")
    assert cli_error(invoke("review", empty, "--no-browser")) == (
        f"Error: {empty} is not a spotreview bundle (no review.parquet inside); {hint}"
    )

    decisions = tmp_path / "review.decisions.json"
    decisions.write_text(json.dumps({"exclusions": {"img-0001": "x", "nope-1": "y"}}))
    before = read_exclusions(analysed_run)
    assert cli_error(invoke("exclude", analysed_run.root, "--from", decisions)) == (
        f"Error: {decisions} names 1 image id(s) {analysed_run.root} does not have (e.g. nope-1); "
        "was the bundle made from another run?"
    )
    assert read_exclusions(analysed_run) == before
    decisions.write_text("[1, 2]")
    assert "is not a decisions file" in cli_error(invoke("exclude", analysed_run.root, "--from", decisions))
