"""The spotreview Spotlight plugin in a real headless Chromium, on a real Spotlight server.

A reviewer excludes an image with the inspector's lens (``exclusions.json`` holds it, the
served table refreshes), approves from the app bar (``approval.json``), plays the snapshots
(the widget's step changes), selects a table row (the widget rings its point) and drags a
box over the widget (the rows are selected); the page logs no error. In a plain
``spotlight.show(df)`` the plugin adds nothing. Screenshots go to ``build/test-artifacts/``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import make_synthetic_run, read_json, start_chromium

from spotreview.analysis.analyze import analyze
from spotreview.reviewing.layouts import SNAPSHOTS_PLOT, import_spotlight
from spotreview.reviewing.review import start_review
from spotreview.reviewing.table import build_table

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"

pytestmark = pytest.mark.slow


def _by(driver, what: str):
    """The elements the plugin marks ``data-spotreview=WHAT``."""
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f'[data-spotreview="{what}"]')


def _wait(driver, check, what: str, timeout: float = 60):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


def _attr(driver, what: str, attribute: str, timeout: float = 30) -> str:
    """An attribute of the first element marked ``what`` (``"text"``: its text), read anew each
    time: Spotlight remounts widgets and lenses when it lays out the page or re-serves the table."""
    from selenium.common.exceptions import StaleElementReferenceException

    def read(d):
        try:
            found = _by(d, what)
            return found and ((found[0].text if attribute == "text" else found[0].get_attribute(attribute)),)
        except StaleElementReferenceException:
            return None

    return _wait(driver, read, f"the {what} element", timeout)[0]


def _act(driver, what: str, action, timeout: float = 30):
    """``action(element)`` on the first element marked ``what``, again on a fresh one if
    Spotlight remounted it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt(d):
        try:
            found = _by(d, what)
            return found and (action(found[0]),)
        except StaleElementReferenceException:
            return None

    return _wait(driver, attempt, f"the {what} element", timeout)[0]


def _settled(driver, what: str) -> None:
    """Wait until the element marked ``what`` stays the same element for a second (Spotlight
    lays the page out again once its data and layout are in)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def same_for_a_second(d):
        found = _by(d, what)
        if not found:
            return False
        time.sleep(1)
        try:
            found[0].is_displayed()
            return True
        except StaleElementReferenceException:
            return False

    _wait(driver, same_for_a_second, f"the {what} element to settle")


def _selected_rows(driver) -> list[int]:
    return driver.execute_script("return Array.from(spotlight.useDataset.getState().selectedIndices)")


def _page_errors(driver) -> list[dict]:
    """The console's errors, less one of Spotlight's own: its relevance worker reads Node's
    ``process`` (``ReferenceError: process is not defined``) on every page, with or without
    plugins."""
    return [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE"
        and not ("relevanceWorker" in e["message"] and "process is not defined" in e["message"])
    ]


def _column(url: str, name: str) -> list:
    table = json.load(urllib.request.urlopen(url + "api/table/", timeout=10))
    return next(c["values"] for c in table["columns"] if c["name"] == name)


@pytest.fixture
def digits_like(tmp_path):
    """An analysed run with the digits demo's numeric class names."""
    run = make_synthetic_run(tmp_path / "run", class_names=tuple(str(d) for d in range(10)), n_per_class=5)
    analyze(run, quiet=True)
    return run


def test_exclude_approve_and_play_in_the_page(digits_like, tmp_path):
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    run = digits_like
    table = build_table(run, save=False)
    target = table.sort_values("outlier_rank_last").iloc[0]["id"]  # the table's first row
    steps = [str(s) for s in run.snapshots()]
    with start_review(run, open_browser=False, quiet=True) as live:
        # what `review` does: re-serve the table when exclusions.json changes
        threading.Thread(target=live.wait, kwargs={"poll": 0.2}, daemon=True).start()
        driver = start_chromium(tmp_path, (1600, 1000))
        try:
            driver.get(live.url)
            _wait(driver, lambda d: _by(d, "snapshots-canvas") and _by(d, "appbar"), "the plugin's widget and app bar")
            _settled(driver, "snapshots-canvas")

            def widget(attribute: str) -> str:
                return _attr(driver, "snapshots", f"data-{attribute}")

            assert widget("step") == steps[-1]  # it opens on the last snapshot
            assert SNAPSHOTS_PLOT in driver.find_element(By.TAG_NAME, "body").text
            state = _attr(driver, "state", "text")
            assert f"{len(steps)} snapshots" in state and "not approved" in state and "0 excluded" in state

            # Select the table's first row: the inspector shows the lens, the widget rings the point.
            driver.find_element(By.XPATH, f"//div[text()='{target}']").click()
            _wait(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-spotreview="exclude-lens"][data-id="{target}"]'),
                "the exclude lens",
            )
            _wait(driver, lambda d: widget("highlighted") == "1", "the widget to ring the selected row")

            # Go to the first snapshot (a click at the slider's left end): the widget stays there.
            def to_start(slider):
                ActionChains(driver).move_to_element_with_offset(
                    slider, -slider.size["width"] // 2 + 1, 0
                ).click().perform()

            _act(driver, "slider", to_start)
            _wait(driver, lambda d: widget("snapshot") == "0", "the slider to go to the first snapshot")

            # Exclude it with a reason.
            _act(driver, "exclude-reason", lambda e: e.send_keys("blurry scan"))
            _act(driver, "exclude-toggle", lambda e: e.click())
            _wait(
                driver,
                lambda d: run.exclusions.is_file() and read_json(run.exclusions) == {target: "blurry scan"},
                "exclusions.json",
            )
            ids = _wait(
                driver,
                lambda d: (
                    _column(live.url, "exclude")[_column(live.url, "id").index(target)] and _column(live.url, "id")
                ),
                "the table to refresh",
            )
            assert _column(live.url, "exclude_reason")[ids.index(target)] == "blurry scan"
            _wait(driver, lambda d: "1 excluded" in _attr(d, "state", "text"), "the app bar to count the exclusion")
            _wait(
                driver,
                lambda d: _attr(d, "exclude-lens", "data-excluded") == "true",
                "the lens to show it",
            )
            assert widget("step") == steps[0]  # the re-served table leaves the widget where it was
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SCREENSHOTS / "plugin-lens.png"))

            # Approve from the app bar, as "ana".
            _act(driver, "approve", lambda e: e.click())
            name = _wait(driver, lambda d: _by(d, "approve-name"), "the approve dialog")[0]
            name.clear()
            name.send_keys("ana")
            _by(driver, "approve-confirm")[0].click()
            _wait(driver, lambda d: run.approval.is_file(), "approval.json")
            record = read_json(run.approval)
            assert record["by"] == "ana" and record["exclusions"] == {target: "blurry scan"}
            _wait(driver, lambda d: _attr(d, "appbar", "data-approval") == "approved", "the app bar")
            driver.save_screenshot(str(SCREENSHOTS / "plugin-appbar.png"))

            # Play: the step walks from the first snapshot to the last.
            assert widget("step") == steps[0]
            _act(driver, "play", lambda e: e.click())
            seen = set()

            def played(d):
                seen.add(widget("step"))
                return widget("playing") == "false" and len(seen) > 2

            _wait(driver, played, "the snapshots to play", timeout=30)
            assert set(steps) <= seen | {steps[0]}, seen  # every snapshot was shown (the first at the start)
            assert widget("step") == steps[-1]

            # Drag a box over the whole picture: every point's row is selected. The box starts
            # inside the plot's 12 px margin (its edges are the layout's splitters).
            _settled(driver, "snapshots-canvas")
            canvas = _by(driver, "snapshots-canvas")[0]
            w, h = canvas.size["width"], canvas.size["height"]
            corner = ActionChains(driver).move_to_element_with_offset(canvas, -w // 2 + 10, -h // 2 + 10)
            corner.click_and_hold().move_by_offset(w - 20, h - 20).release().perform()
            _wait(driver, lambda d: len(_selected_rows(d)) == len(table), "the box to select every row")
            _wait(driver, lambda d: widget("highlighted") == str(len(table)), "every point ringed")

            # Exclude the whole selection from the lens: every row lands, the approval goes stale.
            _act(driver, "exclude-selected", lambda e: e.click())
            _wait(driver, lambda d: len(read_json(run.exclusions)) == len(table), "every row in exclusions.json")
            assert len(set(read_json(run.exclusions).values())) == 1  # the one reason in the lens' field
            _wait(driver, lambda d: _attr(d, "appbar", "data-approval") == "stale", "a stale approval")
            assert f"{len(table)} excluded" in _attr(driver, "state", "text")

            # Spotlight's filter: the widget shows only the rows it keeps.
            driver.execute_script(
                "const d = spotlight.useDataset.getState();"
                "d.addFilter(new spotlight.PredicateFilter(d.columnsByKey.outlier_rank_last,"
                " {shorthand: '<=', compare: (v, r) => v <= r}, 5));"
            )
            _wait(driver, lambda d: widget("drawn") == "5", "the widget to follow the filter")
            assert _page_errors(driver) == []
        finally:
            driver.quit()


def test_plugin_is_inert_in_a_plain_spotlight_show(tmp_path):
    """A user's own ``spotlight.show(df)`` (even while a review runs in the same process)
    gets no plugin routes but ``state``, no widget, lens or app-bar item, and no error."""
    pytest.importorskip("selenium.webdriver")
    import pandas as pd

    spotlight = import_spotlight()
    viewer = spotlight.show(pd.DataFrame({"x": [1.0, 2.0, 3.0], "name": ["a", "b", "c"]}), no_browser=True, wait=False)
    try:
        url = viewer.url
        plugins = json.load(urllib.request.urlopen(url + "api/plugins/", timeout=10))
        assert "spotreview" in [p["name"] for p in plugins]  # loaded, as in every Spotlight server
        assert json.load(urllib.request.urlopen(url + "api/spotreview/state", timeout=10))["active"] is False
        for path, data in (
            ("snapshots", None),
            ("frontend/lens.js", None),
            ("exclude", b'{"ids": ["a"]}'),
            ("approve", b'{"by": "x"}'),
        ):
            request = urllib.request.Request(
                url + "api/spotreview/" + path, data=data, headers={"Content-Type": "application/json"}
            )
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=10)
            assert e.value.code in (404, 405), path
        driver = start_chromium(tmp_path, (1200, 800))
        try:
            driver.get(url)
            _wait(
                driver,
                lambda d: d.execute_script("return document.querySelectorAll('.flexlayout__tab').length > 0"),
                "the page",
            )
            time.sleep(2)  # give a plugin time to register anything
            assert _by(driver, "appbar") == [] and _by(driver, "snapshots") == []
            keys = driver.execute_script("return Object.keys(spotlight.useDataset.getState().columnData)")
            assert set(keys) == {"x", "name"}
            assert _page_errors(driver) == []
        finally:
            driver.quit()
    finally:
        viewer.close()
