"""Zoom and pan in the HTML player, driven in a real headless Chromium with real input events:
the wheel zooms about the cursor, a drag pans, a double-click resets, the axes' ticks follow
the view, hovering finds a point in the zoomed view and the view persists while playing.

A zoomed screenshot goes to ``build/test-artifacts/player-zoomed.png`` (``build/`` is git-ignored).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import start_chromium
from test_player import _errors, _hover, _open, make_player_data

from spotreview.rendering.player import write_player

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "player-zoomed.png"
LIMITS = [-9.0, 9.0, -7.5, 7.5]  # make_player_data's axes


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), (1400, 900))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The toy data with rows 20 and 23 (same class) 0.02 apart at every snapshot: one blob
    in the whole view (0.02 of 18 axis units is about a pixel), two points when zoomed."""
    data = make_player_data()
    data.coords[:, 23] = data.coords[:, 20] + np.float32(0.02)
    return write_player(tmp_path_factory.mktemp("zoom") / "story.html", data)


def _view(driver) -> list[float]:
    return driver.execute_script("return player.view()")


def _canvas(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "scatter")


def _at_point(driver, row: int) -> tuple[int, int]:
    """Offset of point ``row`` from the canvas' centre, as ActionChains and ScrollOrigin take it."""
    x, y = driver.execute_script("return player.project(arguments[0])", row)
    w, h = driver.execute_script("return player.size()")
    return round(x - w / 2), round(y - h / 2)


def _wheel(driver, offset: tuple[int, int], delta_y: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    origin = ScrollOrigin.from_element(_canvas(driver), *offset)
    ActionChains(driver).scroll_from_origin(origin, 0, delta_y).perform()
    time.sleep(0.1)  # the next animation frame draws the view


def _apart(driver, i: int, j: int) -> float:
    """CSS px between points i and j as drawn."""
    (xi, yi), (xj, yj) = (driver.execute_script("return player.project(arguments[0])", k) for k in (i, j))
    return float(np.hypot(xi - xj, yi - yj))


def _settle(driver) -> None:
    driver.execute_script("player.goTo(3)")
    time.sleep(0.8)  # the glide to the last snapshot ends


def test_wheel_zooms_about_the_cursor_and_the_axes_follow(driver, page):
    _open(driver, page)
    _settle(driver)
    assert _view(driver) == pytest.approx(LIMITS)
    ticks = driver.execute_script("return player.stats.ticks")
    driver.execute_script(
        "const c = document.getElementById('scatter'); window.wheelAt = null;"
        "c.addEventListener('wheel', (e) => { const r = c.getBoundingClientRect();"
        " wheelAt = [e.clientX - r.left - c.clientLeft, e.clientY - r.top - c.clientTop]; })"
    )
    before = _view(driver)
    _wheel(driver, _at_point(driver, 7), -600)  # wheel up over row 7: zoom in
    x0, x1, y0, y1 = _view(driver)
    assert x1 - x0 < 0.5 * (LIMITS[1] - LIMITS[0])
    assert (x1 - x0) / (y1 - y0) == pytest.approx(18 / 15, rel=1e-4)  # the aspect is kept
    # The data point under the cursor stays under it.
    (cx, cy), w = driver.execute_script("return window.wheelAt"), driver.execute_script("return player.size()[0]")
    under = lambda v: (v[0] + cx * (v[1] - v[0]) / w, v[3] - cy * (v[1] - v[0]) / w)  # noqa: E731
    assert under([x0, x1, y0, y1]) == pytest.approx(under(before), abs=1e-5 * (LIMITS[1] - LIMITS[0]))
    assert abs(cx - driver.execute_script("return player.project(7)[0]")) < 2  # over row 7
    zoomed = driver.execute_script("return player.stats.ticks")
    assert zoomed != ticks
    assert all(x0 <= v <= x1 for v in zoomed["x"]) and all(y0 <= v <= y1 for v in zoomed["y"])
    assert len(zoomed["x"]) >= 3 and len(zoomed["y"]) >= 3
    _wheel(driver, (0, 0), 5000)  # far out: never beyond the whole picture
    x0, x1, _, _ = _view(driver)
    assert x1 - x0 == pytest.approx(LIMITS[1] - LIMITS[0], rel=1e-6)
    assert _errors(driver) == []


def test_drag_pans_and_double_click_resets(driver, page):
    from selenium.webdriver.common.action_chains import ActionChains

    _open(driver, page)
    _settle(driver)
    _wheel(driver, (0, 0), -400)
    x0, x1, y0, y1 = _view(driver)
    scale = driver.execute_script("return player.size()[0]") / (x1 - x0)  # CSS px per axis unit
    pinned = driver.execute_script("return player.state.pinned.slice()")
    canvas = _canvas(driver)
    ActionChains(driver).move_to_element_with_offset(canvas, -100, 60).click_and_hold().move_by_offset(
        40, 10
    ).move_by_offset(40, 10).release().perform()
    time.sleep(0.1)
    # Dragged right and down by (80, 20) px: the data range moves left and up.
    moved = [x0 - 80 / scale, x1 - 80 / scale, y0 + 20 / scale, y1 + 20 / scale]
    assert _view(driver) == pytest.approx(moved, abs=1e-3)
    assert driver.execute_script("return player.state.pinned") == pinned  # a drag pins nothing
    ActionChains(driver).move_to_element_with_offset(canvas, -100, 60).double_click().perform()
    time.sleep(0.1)
    assert _view(driver) == pytest.approx(LIMITS)
    assert _errors(driver) == []


def test_hover_finds_a_point_of_the_zoomed_view_and_playing_keeps_the_view(driver, page):
    _open(driver, page)
    _settle(driver)
    assert _apart(driver, 20, 23) < 3  # unzoomed, the two are one blob
    for _ in range(4):
        _wheel(driver, _at_point(driver, 20), -500)
    assert _apart(driver, 20, 23) > 20
    assert "img-0023" in _hover(driver, 23).splitlines()[0]
    assert "img-0020" in _hover(driver, 20).splitlines()[0]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    view = _view(driver)
    driver.execute_script("player.play()")
    time.sleep(0.6)
    t = driver.execute_script("player.pause(); return player.state.t")
    assert 0 < t < 3  # it played (from the start again) ...
    assert _view(driver) == view  # ... in the same view
    assert _errors(driver) == []
