"""The HTML player's "colour by" menu, its legend, the training dynamics on hover and the rings of
an issue group (``export --highlight-issue``): the data JSON, and the page in a real headless
Chromium opened from disk.

The screenshot of the toy page coloured by region goes to
``build/test-artifacts/player-by-region.png`` (``build/`` is git-ignored), to be looked at.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import start_chromium
from test_player import COLORS, _class_pixels, _data, _errors, _hover, _open, make_player_data

from spotreview.analysis.dynamics import COLUMNS, REGIONS
from spotreview.rendering import style
from spotreview.rendering.colouring import NO_PROBABILITIES, colour_modes
from spotreview.rendering.player import write_player
from spotreview.rendering.rings import IssueRings

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "player-by-region.png"
N = 30
WRONG_ROW, WRONG_AT = 10, 2  # the one prediction that is wrong: row 10 at snapshot 2
RINGED = (7, 12)


def make_dynamics(n: int = N) -> dict[str, np.ndarray]:
    """Every dynamics column: regions and forgetting events in blocks that cut across the classes
    (row % 3), row 3 never learned (NaN learned step)."""
    rows = np.arange(n)
    learned = np.where(rows % 2, 100.0, 50.0)
    learned[3] = np.nan
    return {
        "confidence_mean": rows / n,
        "confidence_std": np.full(n, 0.125),
        "correct_fraction": np.full(n, 0.75),
        "forgetting_events": rows // 3 % 4,
        "learned_step": learned,
        "margin_mean": rows / n - 0.5,
        "data_map_region": np.asarray(REGIONS, dtype=object)[rows // 3 % 3],
        "neighbour_change": np.full(n, 0.25),
    }


def coloured_data(**changes):
    """The toy player data (test_player) with dynamics, one wrong prediction and two rings."""
    data = make_player_data(n=N)
    data.predictions[WRONG_AT, WRONG_ROW] = (data.labels[WRONG_ROW] + 1) % 3
    issue = IssueRings("likely_mislabelled", "likely mislabelled", np.array(RINGED, dtype=np.int64))
    return replace(data, dynamics=make_dynamics(), issue=issue, **changes)


def _pixels(driver, color: str, alpha: float = 0.9, tolerance: int = 30) -> int:
    """Canvas pixels of ``color`` drawn at ``alpha`` over white."""
    rgb = [round(alpha * int(color[k : k + 2], 16) + (1 - alpha) * 255) for k in (1, 3, 5)]
    return driver.execute_script(
        """const c = document.getElementById('scatter'), [r, g, b] = arguments[0], tol = arguments[1];
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4)
          if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < tol) n++;
        return n;""",
        rgb,
        tolerance,
    )


def _ring_pixels_near(driver, row: int, color: str, reach: float = 16) -> int:
    """Pixels of the ring colour within ``reach`` CSS px of point ``row``."""
    x, y = driver.execute_script("return player.project(arguments[0])", row)
    rgb = [int(color[k : k + 2], 16) for k in (1, 3, 5)]
    return driver.execute_script(
        """const c = document.getElementById('scatter'), r = window.devicePixelRatio || 1;
        const [x, y, reach, rgb] = arguments, x0 = Math.round((x - reach) * r), y0 = Math.round((y - reach) * r);
        const d = c.getContext('2d').getImageData(x0, y0, Math.round(2 * reach * r), Math.round(2 * reach * r)).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
          if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 60) n++;
        return n;""",
        x,
        y,
        reach,
        rgb,
    )


def _legend(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#legend button")]


def _choose(driver, key: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "colour-by")).select_by_value(key)
    time.sleep(0.2)


def _settle(driver, snapshot: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("player.goTo(arguments[0])", snapshot)
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return player.state.t") == snapshot)
    time.sleep(0.2)


# --- the data --------------------------------------------------------------------------------


def test_data_carries_the_modes_dynamics_and_issue(tmp_path):
    data = coloured_data()
    raw, doc = _data(write_player(tmp_path / "x.html", data))
    assert [m["key"] for m in doc["colour_by"]] == ["class", "correct", "region", "forgetting"]
    assert not any(m["missing"] for m in doc["colour_by"])
    region = doc["colour_by"][2]
    assert region["names"] == list(REGIONS) and region["colors"] == list(style.REGION_COLORS.values())
    assert doc["dynamics"] == list(COLUMNS)
    line = next(row for row in raw.splitlines() if '"img-0003"' in row)  # what `grep img-0003` shows
    dyn = dict(zip(doc["dynamics"], json.loads(line.rstrip(","))["dyn"]))
    assert dyn == {
        "confidence_mean": 0.1,
        "confidence_std": 0.125,
        "correct_fraction": 0.75,
        "forgetting_events": 1,
        "learned_step": None,  # never learned: NaN -> null
        "margin_mean": -0.4,
        "data_map_region": REGIONS.index("ambiguous"),
        "neighbour_change": 0.25,
    }
    assert doc["issue"] == {"title": "likely mislabelled", "color": style.ISSUE_RING_COLOR, "rows": list(RINGED)}


def test_without_probabilities_only_the_class_mode_and_neighbour_change():
    modes = colour_modes(predictions=False, dynamics={"neighbour_change": np.zeros(3)})
    assert [m["missing"] for m in modes] == ["", NO_PROBABILITIES, NO_PROBABILITIES, NO_PROBABILITIES]


def test_the_style_keeps_the_scales_the_page_draws():
    """The region colours follow the dynamics' region order; the ring colour is in no scale."""
    assert list(style.REGION_COLORS) == list(REGIONS)
    scales = [*style.class_hex(10), *style.class_hex(20)]
    for mode in (style.CORRECT_COLORS, style.REGION_COLORS, style.FORGETTING_COLORS):
        scales += list(mode.values())
    assert style.ISSUE_RING_COLOR not in scales


def test_player_js_keeps_no_copy_of_the_scales():
    from importlib import resources

    assets = resources.files("spotreview.rendering") / "assets"
    page = "".join((assets / name).read_text("utf-8") for name in ("player.js", "player.css", "player.html"))
    for read in ("D.colour_by", "D.dynamics", "D.issue"):
        assert read in page
    keys = {m["key"] for m in colour_modes(predictions=True, dynamics={})}
    for scale in (style.CORRECT_COLORS, style.REGION_COLORS, style.FORGETTING_COLORS):
        for name, color in scale.items():
            assert color.lower() not in page.lower()
            assert name in keys or f"'{name}'" not in page, f"player.js names the category {name!r} itself"
    assert style.ISSUE_RING_COLOR not in page.lower()


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), (1400, 900))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return write_player(tmp_path_factory.mktemp("colour") / "story.html", coloured_data(), highlight=["img-0005"])


def test_colour_by_region_recolours_the_points_and_the_legend_follows(driver, page):
    _open(driver, page)
    assert _legend(driver) == ["cat", "dog", "frog", "× excluded", "likely mislabelled (2)"]
    before = [_class_pixels(driver, c) for c in COLORS]
    assert min(before) > 50 and _pixels(driver, style.REGION_COLORS["hard"]) == 0

    _choose(driver, "region")
    assert driver.execute_script("return player.state.colourBy") == "region"
    assert _legend(driver) == ["easy 12", "ambiguous 9", "hard 9", "× excluded", "likely mislabelled (2)"]
    assert [_class_pixels(driver, c) for c in COLORS] == [0, 0, 0]
    assert all(_pixels(driver, c) > 50 for c in style.REGION_COLORS.values())
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))

    # The legend hides a region (only the legend of the colouring shown hides points).
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, '#legend button[data-category="2"]').click()
    time.sleep(0.2)
    assert _pixels(driver, style.REGION_COLORS["hard"]) == 0 and _pixels(driver, style.REGION_COLORS["easy"]) > 50

    _choose(driver, "forgetting")
    assert _legend(driver)[:3] == ["never forgotten 9", "forgotten once 9", "forgotten 2+ times 12"]
    assert all(_pixels(driver, c) > 50 for c in style.FORGETTING_COLORS.values())
    _choose(driver, "class")
    assert [_class_pixels(driver, c) for c in COLORS] == before
    assert _errors(driver) == []


def test_correct_or_wrong_follows_the_snapshot(driver, page):
    _open(driver, page)
    _choose(driver, "correct")
    wrong = style.CORRECT_COLORS["wrong"]
    assert _legend(driver)[:2] == ["correct 30", "wrong 0"] and _pixels(driver, wrong) == 0
    _settle(driver, WRONG_AT)
    assert _legend(driver)[:2] == ["correct 29", "wrong 1"]
    assert _pixels(driver, wrong) > 10
    x, y = driver.execute_script("return player.project(arguments[0])", WRONG_ROW)
    pixel = driver.execute_script(
        "const c = document.getElementById('scatter'), r = window.devicePixelRatio || 1;"
        "return Array.from(c.getContext('2d').getImageData(arguments[0] * r, arguments[1] * r, 1, 1).data)",
        x,
        y,
    )
    expected = [round(0.9 * int(wrong[k : k + 2], 16) + 0.1 * 255) for k in (1, 3, 5)]
    assert sum(abs(p - e) for p, e in zip(pixel, expected)) < 30  # the wrong point itself, on top
    _settle(driver, WRONG_AT + 1)
    assert _legend(driver)[:2] == ["correct 30", "wrong 0"] and _pixels(driver, wrong) == 0
    assert _errors(driver) == []


def test_hover_shows_the_training_dynamics(driver, page):
    _open(driver, page)
    _settle(driver, 3)
    text = _hover(driver, 3)
    assert "img-0003" in text
    assert "confidence 0.1 ± 0.125 · correct 75% of snapshots" in text
    assert "forgotten 1× · not learned (wrong at the last snapshot)" in text
    assert "margin -0.4 · data map: ambiguous" in text and "neighbour change 0.25" in text
    assert "likely mislabelled" not in text
    assert "◯ likely mislabelled" in _hover(driver, RINGED[1])  # a ringed image says why
    assert "learned at step 50" in _hover(driver, 6)
    assert _errors(driver) == []


def test_issue_rings_are_drawn_above_the_points_and_toggle(driver, page):
    from selenium.webdriver.common.by import By

    _open(driver, page)
    ring = style.ISSUE_RING_COLOR
    for snapshot in range(4):
        _settle(driver, snapshot)
        assert all(_ring_pixels_near(driver, row, ring) > 20 for row in RINGED), snapshot
    driver.find_element(By.ID, "toggle-issue").click()
    time.sleep(0.2)
    assert all(_ring_pixels_near(driver, row, ring) == 0 for row in RINGED)
    assert _errors(driver) == []


def test_a_run_without_probabilities_disables_the_modes_that_need_them(driver, tmp_path):
    from selenium.webdriver.common.by import By

    data = replace(make_player_data(n=N), predictions=None, dynamics={"neighbour_change": np.full(N, 0.5)})
    _open(driver, write_player(tmp_path / "noprobs.html", data))
    options = driver.find_elements(By.CSS_SELECTOR, "#colour-by option")
    assert [o.get_attribute("value") for o in options] == ["class", "correct", "region", "forgetting"]
    assert [o.get_property("disabled") for o in options] == [False, True, True, True]
    assert all(o.get_attribute("title") == NO_PROBABILITIES for o in options[1:])
    assert driver.execute_script("return player.colourBy('region')") is False
    assert driver.execute_script("return player.state.colourBy") == "class"
    text = _hover(driver, 7)
    assert "neighbour change 0.5" in text and "confidence" not in text
    assert _legend(driver) == ["cat", "dog", "frog", "× excluded"]  # no issue group: no ring toggle
    assert _errors(driver) == []
