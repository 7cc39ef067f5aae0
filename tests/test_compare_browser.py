"""Comparing two runs with real components: the comparison served by a real Spotlight server
(table, issue groups, layout) from the runs and from a bundle, the two-player HTML page in
headless Chromium (opened from disk, hover and pins shown in both panels, one clock, no console
errors), and, slow, two tiny fine-tuned runs (another seed: refused)."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli_error, start_chromium
from pairs import BROKEN, FIXED, make_pair

import spotreview
from spotreview.analysis.analyze import analyze
from spotreview.cli import cli
from spotreview.reviewing.compare import comparison_issue_groups
from spotreview.reviewing.compare_review import CHANGE_PLOT, plot_name
from spotreview.rundir.run import Run

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "compare-player.png"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Runs A and B, analysed, the comparison approved (read-only for these tests)."""
    a, b = make_pair(tmp_path_factory.mktemp("pair"))
    for run in (a, b):
        analyze(run, quiet=True)
    spotreview.approve_comparison(a, b)
    return a, b


def _get(url: str):
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.load(r)


def _served(review) -> tuple[list, dict]:
    """The served issues, and the served columns (category codes as names)."""
    api = _get(review.url + "api/table/")
    columns = {}
    for c in api["columns"]:
        cats = (c["dtype"].get("categories") or {}) if c["dtype"]["name"] == "Category" else {}
        names = {code: name for name, code in cats.items()}
        columns[c["name"]] = [names.get(v, v) for v in c.get("values") or []] if names else c.get("values")
        columns[c["name"] + ".dtype"] = c["dtype"]
    return _get(review.url + "api/issues/")["issues"], columns


# --- the review -----------------------------------------------------------------------------------


def test_spotlight_serves_the_comparison_from_the_runs_and_a_bundle(pair, tmp_path, monkeypatch):
    from spotreview.reviewing.review import start_review

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = pair
    df = spotreview.comparison_table(a, b)
    with start_review(a, compare=b, open_browser=False, quiet=True) as review:
        issues, cols = _served(review)
        layout = json.dumps(_get(review.url + "api/layout/"), ensure_ascii=False)
    assert cols["id"] == df["id"].tolist()
    assert cols["change.dtype"]["categories"] == {"fixed": 0, "broken": 1, "both_right": 2, "both_wrong": 3}
    for side in ("a", "b"):  # numeric-looking or not, class names are categories with every class
        assert set(cols[f"prediction_last_{side}.dtype"]["categories"]) == {"cat", "dog", "frog"}
    assert [i["title"] for i in issues] == ["broken by B", "fixed by B", "wrong in both runs"]
    assert [i["rows"] for i in issues] == [list(g.rows) for g in comparison_issue_groups(df)]
    assert sorted(cols["id"][r] for r in issues[0]["rows"]) == sorted(BROKEN)
    assert all(cols["change"][r] == "fixed" for r in issues[1]["rows"])
    for name in (plot_name("a", "a"), plot_name("b", "b"), CHANGE_PLOT, "IssuesWidget", "pca_last_x_b"):
        assert name in layout

    bundle = tmp_path / "cmp.zip"
    result = invoke("bundle", a.root, "--compare", b.root, "-o", bundle)
    assert result.exit_code == 0, result.output
    with start_review(bundle, open_browser=False, quiet=True) as review:
        from_bundle, bundle_cols = _served(review)
        bundle_layout = json.dumps(_get(review.url + "api/layout/"), ensure_ascii=False)
    assert from_bundle == issues and bundle_cols["change"] == cols["change"]
    assert plot_name("b", "b") in bundle_layout


def test_review_command_with_compare(pair, tmp_path):
    a, b = pair
    result = invoke("review", a.root, "--compare", b.root, "--no-browser", "--timeout", "1")
    assert result.exit_code == 0, result.output
    assert f"Not approved; approve it later with `spotreview approve {a.root} --compare {b.root}`" in result.stdout
    other = tmp_path / "other"
    shutil.copytree(b.root, other)
    Run(other).update_manifest(class_names=["cat", "dog", "toad"])
    error = cli_error(invoke("review", a.root, "--compare", other, "--no-browser", "--timeout", "1"))
    assert error.startswith(f"Error: cannot compare {a.root} and {other}: class 2 is 'frog' in A, 'toad' in B;")


@pytest.mark.slow
def test_review_page_draws_both_runs_in_chromium(pair, tmp_path, capsys):
    """The comparison's review page: both runs' scatterplots draw their points, the Issues
    widget lists the groups, the inspector shows both runs' values of a selected image."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from test_browser import DRAWN_POINTS_JS

    from spotreview.reviewing.review import start_review

    a, b = pair
    names = (plot_name("a", "a"), plot_name("b", "b"))
    counts: dict = {}
    with start_review(a, compare=b, open_browser=False, quiet=True) as review:
        browser = start_chromium(tmp_path, (1600, 1000))
        try:
            browser.get(review.url)

            def drawn(d):
                counts.update(d.execute_script(DRAWN_POINTS_JS))
                return all(counts.get(n, {}).get("pixels", 0) >= 300 for n in names)

            WebDriverWait(browser, 120, poll_frequency=0.5).until(drawn)
            browser.find_element(By.XPATH, f"//div[text()='{BROKEN[0]}']").click()
            WebDriverWait(browser, 30).until(
                lambda d: "change, A → B broken" in d.find_element(By.TAG_NAME, "body").text
            )
            text = browser.find_element(By.TAG_NAME, "body").text
            screenshot = SCREENSHOT.with_name("compare-review.png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(screenshot))
        finally:
            browser.quit()
    for title in ("broken by B", "fixed by B", "wrong in both runs", "A (a) · prediction", "B (b) · prediction"):
        assert title in text, title
    with capsys.disabled():
        print(f"\ncomparison review screenshot: {screenshot} (canvas: {[counts[n] for n in names]})")


# --- the HTML page in Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), (1600, 1000))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(pair, tmp_path_factory):
    a, b = pair
    return spotreview.compare(a, b, tmp_path_factory.mktemp("html") / "cmp.html", quiet=True).path


def _open(driver, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))


def _errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _hover_in_panel(driver, panel: int, row: int) -> None:
    """Move the real mouse onto point ``row`` where panel ``panel``'s player draws it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    frame = driver.find_elements(By.TAG_NAME, "iframe")[panel]
    driver.switch_to.frame(frame)
    try:
        canvas = driver.find_element(By.ID, "scatter")
        x, y = driver.execute_script("return player.project(arguments[0])", row)
        w, h = driver.execute_script("return player.size()")
        ActionChains(driver).move_to_element_with_offset(canvas, round(x - w / 2), round(y - h / 2)).perform()
    finally:
        driver.switch_to.default_content()


def _players(driver, expression: str):
    return driver.execute_script(f"return compare.players().map((p) => {expression})")


def test_page_holds_both_runs_and_one_atlas(page):
    text = page.read_text("utf-8")
    doc = json.loads(text.split('id="compare-data">\n', 1)[1].split("\n</script>", 1)[0])
    assert doc["names"] == ["a", "b"] and doc["sync"] == "progress" and len(doc["keys"]) == 6
    assert sorted(b["id"] for b in doc["board"][:5]) == sorted(FIXED + BROKEN)
    assert len(re.findall(r"data:image/(png|jpeg);base64,", text)) == 1  # the same images: one atlas for both
    assert "http://" not in text and "https://" not in text  # nothing from the network
    lines = [row for row in text.splitlines() if row.startswith('{"id":"img-0011"')]  # one per run
    assert [json.loads(row.rstrip(","))["class"] for row in lines] == ["cat", "cat"]


def test_hover_and_pin_show_in_both_panels(driver, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, page)
    assert _errors(driver) == []
    driver.execute_script("compare.goTo(5)")  # the last key frame: the classes apart
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return compare.state.k") == 5)
    _hover_in_panel(driver, 0, driver.execute_script("return compare.players()[0].row(arguments[0])", FIXED[0]))
    WebDriverWait(driver, 5).until(lambda d: _players(d, "p.state.hover")[0] >= 0)
    row = _players(driver, "p.state.hover")[0]  # the point under the mouse (points may overlap)
    assert _players(driver, "p.state.hover") == [row, row]
    image_id = driver.execute_script(
        "const f = document.querySelectorAll('iframe')[0].contentWindow; return f.JSON.parse("
        "f.document.getElementById('spotreview-data').textContent).points[arguments[0]].id",
        row,
    )
    driver.switch_to.frame(driver.find_elements(By.TAG_NAME, "iframe")[1])
    tip = driver.find_element(By.ID, "tooltip")
    WebDriverWait(driver, 5).until(lambda d: tip.is_displayed())
    assert image_id in tip.text  # panel B shows the image hovered in panel A
    driver.switch_to.default_content()

    _hover_in_panel(driver, 1, row)  # a click in panel B pins it in both
    WebDriverWait(driver, 5).until(lambda d: _players(d, "p.state.hover")[1] >= 0)
    row = _players(driver, "p.state.hover")[1]
    driver.switch_to.frame(driver.find_elements(By.TAG_NAME, "iframe")[1])
    ActionChains(driver).click().perform()
    driver.switch_to.default_content()
    WebDriverWait(driver, 5).until(lambda d: _players(d, "p.state.pinned") == [[row], [row]])
    WebDriverWait(driver, 5).until(lambda d: _players(d, "p.stats.tracesDrawn > 0") == [True, True])

    tile = driver.find_elements(By.CSS_SELECTOR, "#board .tile")[1]  # the leaderboard pins in both too
    other = int(tile.get_attribute("data-row"))
    tile.click()
    WebDriverWait(driver, 5).until(lambda d: _players(d, f"p.state.pinned.includes({other})") == [True, True])
    assert other in _players(driver, "p.state.pinned")[0]
    assert "pinned" in tile.get_attribute("class")
    assert _errors(driver) == []


def test_one_clock_drives_both_panels(driver, page, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, page)
    assert driver.find_element(By.ID, "where").text.startswith("training progress 0% · A step 0 · B step 0")
    driver.execute_script("compare.goTo(4)")  # progress 25%: B at its step 10, A a sixteenth past step 20
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return compare.state.k") == 4)
    assert _players(driver, "p.state.t") == pytest.approx([3 + 0.05 / 0.8, 1.0])
    assert driver.find_element(By.ID, "where").text.startswith("training progress 25% · A step 25 · B step 10")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)  # the keyboard moves both
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return compare.state.k") == 5)
    assert _players(driver, "p.state.t") == [4, 2]
    driver.execute_script("compare.state.speed = 0.5; compare.goTo(0); setTimeout(() => compare.play(), 400)")
    time.sleep(1.6)
    k = driver.execute_script("compare.pause(); return compare.state.k")
    assert 0 < k < 5
    assert _players(driver, "p.state.t") == pytest.approx(driver.execute_script("return compare.positions()"))
    _hover_in_panel(driver, 0, 3)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    assert _errors(driver) == []
    with capsys.disabled():
        print(f"\ncomparison screenshot: {SCREENSHOT}")


# --- two fine-tuned runs -------------------------------------------------------------------------


@pytest.mark.slow
def test_two_finetuned_runs_compared_and_another_seed_refused(tmp_path, driver):
    """Two tiny runs of the digits demo with other learning rates are compared; a run with
    another seed (another evaluation split) is refused."""
    tiny = dict(eval_size=30, epochs=1, batch_size=64, save_steps=8, quiet=True)
    runs = {}
    for name, seed, lr in (("slow", 0, 1e-3), ("fast", 0, 3e-3), ("seed1", 1, 1e-3)):
        runs[name] = spotreview.finetune(tmp_path / name, seed=seed, learning_rate=lr, **tiny).run
        spotreview.analyze(runs[name], quiet=True)
    a, b = runs["slow"].root, runs["fast"].root
    error = cli_error(invoke("compare", a, runs["seed1"].root, "-o", tmp_path / "x.gif", "--force"))
    assert "is in A's evaluation set only; compare runs of the same evaluation set" in error
    assert invoke("approve", a, "--compare", b, "--yes").exit_code == 0
    for suffix in (".gif", ".mp4", ".html"):
        result = invoke("compare", a, b, "-o", tmp_path / f"cmp{suffix}", "--sync", "epoch", "-q")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"wrote {tmp_path / f'cmp{suffix}'} (")
    df = spotreview.comparison_table(a, b)
    assert set(df["change"]) <= {"fixed", "broken", "both_right", "both_wrong"} and len(df) == 30
    assert set(df["prediction_last_a"]) <= set("0123456789")
    _open(driver, tmp_path / "cmp.html")
    assert _errors(driver) == []
    assert _players(driver, "p.state.t") == [0, 0]
