"""The interactive HTML player: its embedded data, and the page in a real headless Chromium.

The page is opened from disk (file://) as a user would open a file a teammate sent. The
screenshot of a hovered tooltip and a pinned trace mid-animation goes to
``build/test-artifacts/player.png`` (``build/`` is git-ignored).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_synthetic_run, start_chromium

from spotreview.errors import ExportError
from spotreview.rendering.player import PlayerData, write_player

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "player.png"
NAMES = ("cat", "dog", "frog")
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"]  # tab10, as the GIF colours three classes


def make_player_data(n: int = 30, n_snapshots: int = 4, seed: int = 0, bad_id: str = "") -> PlayerData:
    """Three classes drifting apart; ``img-0004`` excluded; row 7 planted far out at every
    snapshot, so it is rank 1; ``bad_id`` replaces the id of row 2."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centers = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    spread = np.linspace(0.1, 1, n_snapshots)[:, None, None]
    coords = (rng.normal(0, 0.6, (n, 2))[None] + spread * centers[labels][None]).astype(np.float32)
    coords[:, 7] = [0.0, -6.0]
    scores = rng.uniform(0.2, 0.9, (n_snapshots, n))
    scores[:, 7] = 1e-4
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1) + 1
    ids = [f"img-{i:04d}" for i in range(n)]
    if bad_id:
        ids[2] = bad_id
    excluded = {"img-0004": "blurry"}
    board = [np.array([r for r in np.argsort(s, kind="stable") if ids[r] not in excluded][:4]) for s in scores]
    tiles = np.zeros((n, 16, 16, 3), np.uint8) + (np.arange(n) * 8)[:, None, None, None].astype(np.uint8)
    steps = np.array([0, 50, 100, 200][:n_snapshots])
    log_steps = np.arange(1, 201)
    return PlayerData(
        steps=steps,
        coords=coords,
        labels=labels,
        class_names=list(NAMES),
        ids=ids,
        scores=scores,
        ranks=ranks,
        board=board,
        thumbs=tiles,
        limits=(-9.0, 9.0, -7.5, 7.5),
        colors=COLORS,
        titles=[f"step {s}" for s in steps],
        subtitle="toy",
        predictions=np.tile(labels, (n_snapshots, 1)),
        epochs=steps / 100,
        accuracy=np.linspace(0.3, 0.9, n_snapshots),
        knn_accuracy=np.full(n_snapshots, np.nan),
        loss=(log_steps, 2.0 * np.exp(-log_steps / 40)),
        excluded=excluded,
    )


def _data(page: Path) -> tuple[str, dict]:
    text = page.read_text("utf-8")
    block = re.search(r'<script type="application/json" id="spotreview-data">\n(.*?)\n</script>', text, re.S)
    return block.group(1), json.loads(block.group(1))


def test_data_is_readable_json_one_line_per_point(tmp_path):
    data = make_player_data(bad_id="a</script><b>x")
    page = write_player(tmp_path / "story.html", data, highlight=["img-0005"])
    raw, doc = _data(page)
    assert [p["id"] for p in doc["points"]] == data.ids  # the id that would end the script survived
    line = next(row for row in raw.splitlines() if '"img-0011"' in row)  # what `grep img-0011` shows
    point = json.loads(line.rstrip(","))
    assert point["rank"] == data.ranks[:, 11].tolist()
    np.testing.assert_allclose(point["xy"], data.coords[:, 11], atol=1e-3)
    np.testing.assert_allclose(point["score"], data.scores[:, 11], rtol=1e-3)
    assert point["class"] == NAMES[data.labels[11]] and point["pred"] == data.predictions[:, 11].tolist()
    assert doc["highlight"] == [5] and doc["excluded"] == {"img-0004": "blurry"}
    assert doc["snapshots"][1]["board_ids"][0] == "img-0007"
    assert all(s["knn_accuracy"] is None for s in doc["snapshots"])  # NaN -> null, valid JSON
    text = page.read_text("utf-8")
    assert not re.search(r"https?://", text), "the page must not reach the network"
    assert len(re.findall(r"data:image/(png|jpeg);base64,", text)) == 1  # one atlas for 30 points


def test_bad_input_is_one_line_error(tmp_path):
    data = make_player_data()
    with pytest.raises(ExportError, match=r"cannot highlight nope, gone: not in the evaluation set"):
        write_player(tmp_path / "x.html", data, highlight=["img-0001", "nope", "gone"])
    data.ranks = data.ranks[:, :5]
    with pytest.raises(ExportError, match=r"ranks has shape \(4, 5\), expected \(4, 30\)"):
        write_player(tmp_path / "x.html", data)
    assert not (tmp_path / "x.html").exists()


def test_data_carries_the_gifs_colours_limits_marker_and_drawing_order(analysed_run, tmp_path):
    """The page's scatter style is the figure's, read from one place (rendering/style.py)."""
    from matplotlib.colors import to_hex

    from spotreview.analysis.store import load_analysis
    from spotreview.rendering.figure import Renderer
    from spotreview.rendering.player import player_data
    from spotreview.rendering.scene import build_scene

    analysis = load_analysis(analysed_run)
    scene = build_scene(analysis, top_k=4)  # the GIF's default size, as the player's axes
    figure = Renderer(scene)
    _, doc = _data(write_player(tmp_path / "x.html", player_data(analysis, top_k=4, scene=scene)))
    assert doc["limits"] == list(figure.ax.get_xlim() + figure.ax.get_ylim())
    lines = [line for line, _ in figure.groups]
    colours = {int(scene.labels[rows[0]]): to_hex(line.get_color()) for line, rows in figure.groups}
    assert doc["colors"] == [colours[c] for c in range(len(scene.class_names))]
    drawn = np.concatenate([rows for _, rows in figure.groups])  # Agg draws the lines in this order
    assert doc["order"] == drawn.tolist() and sorted(doc["order"]) == list(range(len(scene.ids)))
    diameter_px = lines[0].get_markersize() * scene.dpi / 72
    assert doc["marker"]["diameter"] * figure.ax.get_window_extent().width == pytest.approx(diameter_px, rel=1e-3)
    assert {line.get_alpha() for line in lines} == {doc["marker"]["alpha"]}


def test_player_js_keeps_no_copy_of_the_style():
    """Colours, limits, marker and drawing order come from the data, not from constants."""
    from importlib import resources

    js = (resources.files("spotreview.rendering") / "assets" / "player.js").read_text("utf-8")
    for read in ("D.colors", "D.limits", "D.marker.diameter", "D.marker.alpha", "D.order"):
        assert read in js
    for copy in ("Math.imul", "seed", "4000", "2000", "640", "0.8 : 0.9", "tab10"):
        assert copy not in js, f"player.js copies the GIF's style by hand ({copy!r})"


# --- in the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium"), (1400, 900))
    yield driver
    driver.quit()


def _open(driver, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # forget what earlier pages logged
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.ready"))


def _errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _hover(driver, row: int) -> str:
    """Move the mouse onto point ``row`` where the page draws it; the tooltip's text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    canvas = driver.find_element(By.ID, "scatter")
    x, y = driver.execute_script("return player.project(arguments[0])", row)
    w, h = driver.execute_script("return player.size()")
    ActionChains(driver).move_to_element_with_offset(canvas, round(x - w / 2), round(y - h / 2)).perform()
    tip = driver.find_element(By.ID, "tooltip")
    WebDriverWait(driver, 5).until(lambda d: tip.is_displayed())
    return tip.text


def _class_pixels(driver, color: str) -> int:
    """Canvas pixels of the colour a lone point of ``color`` gets (alpha 0.9 over white)."""
    rgb = [round(0.9 * int(color[k : k + 2], 16) + 0.1 * 255) for k in (1, 3, 5)]
    return driver.execute_script(
        """const c = document.getElementById('scatter'), [r, g, b] = arguments[0];
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4)
          if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 30) n++;
        return n;""",
        rgb,
    )


@pytest.fixture(scope="module")
def toy_page(tmp_path_factory):
    return write_player(tmp_path_factory.mktemp("player") / "story.html", make_player_data(), highlight=["img-0005"])


def test_page_opens_from_disk_without_errors(driver, toy_page):
    _open(driver, toy_page)
    assert _errors(driver) == []
    assert driver.execute_script("return player.state.pinned") == [5]  # --highlight starts pinned
    assert driver.execute_script("return player.stats.tracesDrawn") == 1


def test_slider_moves_the_step(driver, toy_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, toy_page)
    label = driver.find_element(By.ID, "step")
    assert label.text.startswith("step 0 ")
    driver.find_element(By.ID, "slider").send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    WebDriverWait(driver, 5).until(lambda d: label.text.startswith("step 100 "))
    assert driver.find_element(By.ID, "title").text == "step 100"
    assert _errors(driver) == []


def test_hover_shows_the_point(driver, toy_page):
    _open(driver, toy_page)
    driver.execute_script("player.goTo(3)")
    time.sleep(0.8)
    text = _hover(driver, 7)
    assert "img-0007" in text and "outlier rank 1 of 30" in text and "predicted dog ✓" in text
    assert "label" not in text.splitlines()[1]  # class names that are words are shown as is
    thumb_ink = driver.execute_script(
        "const c = document.getElementById('tip-thumb');"
        "return c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data[0]"
    )
    assert thumb_ink == 7 * 8  # row 7's tile, read from the atlas


def test_leaderboard_click_pins_the_point(driver, toy_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, toy_page)
    tile = driver.find_elements(By.CSS_SELECTOR, "#board .tile")[1]
    row, image_id = int(tile.get_attribute("data-row")), tile.get_attribute("data-id")
    tile.click()
    # Pinned, and its path drawn on the next animation frame (one path per pinned point).
    WebDriverWait(driver, 5).until(lambda d: d.execute_script("return player.stats.tracesDrawn") == 2)
    assert row in driver.execute_script("return player.state.pinned")
    assert "pinned" in driver.find_elements(By.CSS_SELECTOR, "#board .tile")[1].get_attribute("class")
    assert image_id in driver.find_element(By.ID, "pins").text


def test_legend_hides_a_class(driver, toy_page):
    from selenium.webdriver.common.by import By

    _open(driver, toy_page)
    before = _class_pixels(driver, COLORS[1])
    driver.find_element(By.CSS_SELECTOR, '#legend button[data-class="1"]').click()
    time.sleep(0.2)
    assert before > 50 and _class_pixels(driver, COLORS[1]) == 0
    assert _class_pixels(driver, COLORS[0]) > 50


def test_screenshot_mid_animation(driver, toy_page, capsys):
    _open(driver, toy_page)
    driver.execute_script("player.state.speed = 0.25; player.play()")
    time.sleep(2.5)  # between the second and the third snapshot
    t = driver.execute_script("player.pause(); return player.state.t")
    assert 0 < t < 3 and t != round(t)
    text = _hover(driver, 10)
    assert "img-0010" in text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    assert _errors(driver) == []
    with capsys.disabled():
        print(f"\nplayer screenshot: {SCREENSHOT}")


def test_real_analysed_run_with_numeric_class_names(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from spotreview.analysis.analyze import analyze
    from spotreview.rendering.player import player_data

    run = make_synthetic_run(tmp_path / "run", class_names=("0", "1", "2"))
    analysis = analyze(run, quiet=True)
    page = write_player(
        tmp_path / "run.html", player_data(analysis, exclude={"img-0003": "blurry"}, top_k=4), highlight=["img-0001"]
    )
    _open(driver, page)
    assert _errors(driver) == []
    assert [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#legend button")] == ["0", "1", "2", "× excluded"]
    driver.execute_script("player.goTo(4)")  # the last snapshot, step 100
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "step").text.startswith("step 100 "))
    time.sleep(0.5)  # the glide there ends
    first = driver.find_element(By.CSS_SELECTOR, "#board .tile")
    assert first.get_attribute("data-id") == "img-0035"  # the planted outlier
    assert first.text.startswith("#1 label 2")  # a numeric class name reads as a label, not a rank
    text = _hover(driver, 35)
    assert "img-0035" in text and "outlier rank 1 of 36" in text


def test_export_writes_the_interactive_player(tmp_path):
    from spotreview.analysis.analyze import analyze
    from spotreview.rendering.export import export

    run = make_synthetic_run(tmp_path / "run")
    analyze(run, quiet=True)
    out = export(run, tmp_path / "story.HTML", force=True, quiet=True, highlight=["img-0035"]).path
    raw, doc = _data(out)
    assert doc["highlight"] == [35] and len(doc["points"]) == 36 and len(doc["snapshots"]) == 5
    assert doc["loss"] is not None and doc["snapshots"][-1]["board_ids"][0] == "img-0035"
    frames = export(run, tmp_path / "frames.html", force=True, quiet=True, html_player="frames").path
    assert "spotreview-data" not in frames.read_text("utf-8")  # matplotlib's player over frames
    with pytest.raises(ExportError, match="cannot highlight img-9999: not in the evaluation set"):
        export(run, tmp_path / "bad.html", force=True, quiet=True, highlight=["img-9999"])
    assert not (tmp_path / "bad.html").exists()


def test_interrupted_write_keeps_the_finished_file(tmp_path, monkeypatch):
    page = write_player(tmp_path / "story.html", make_player_data())
    before = page.read_bytes()
    write_text = Path.write_text

    def half_then_interrupt(self, text, *args, **kwargs):
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_player(page, make_player_data(seed=1))
    assert page.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["story.html"]  # no temp file left behind


def test_one_snapshot_without_loss_predictions_or_accuracy(driver, tmp_path):
    from dataclasses import replace

    from selenium.webdriver.common.by import By

    data = replace(
        make_player_data(n_snapshots=1),
        predictions=None,
        loss=None,
        accuracy=None,
        knn_accuracy=None,
        epochs=None,
        excluded={},
        loss_note="not shown: log.csv is missing",
    )
    data.coords[0, 3] = np.nan  # a point without coordinates is skipped, not drawn at 0,0
    _open(driver, write_player(tmp_path / "one.html", data))
    assert _errors(driver) == []
    assert driver.find_element(By.ID, "step").text == "step 0 · 1/1"
    text = _hover(driver, 7)
    assert "img-0007" in text and "predicted" not in text
    assert driver.execute_script("return player.project(3)[0]") is None  # NaN -> null


def test_points_stack_in_the_gifs_drawing_order(driver, tmp_path):
    """Two points of different classes on one spot: the one the GIF draws later is on top."""
    from spotreview.rendering.style import draw_order

    data = make_player_data()
    position = {int(r): k for k, r in enumerate(draw_order(data.labels, len(NAMES)))}
    on_boards = {int(r) for rows in data.board for r in rows} | {4, 5, 7}  # boards, excluded, pinned
    free = [r for r in range(len(data.ids)) if r not in on_boards]
    cats, dogs = [r for r in free if data.labels[r] == 0], [r for r in free if data.labels[r] == 1]
    pairs = sorted(((c, d) for c in cats for d in dogs), key=lambda p: position[p[0]] - position[p[1]])
    pairs = [pairs[0], pairs[-1]]  # the dog drawn after the cat, then a cat drawn after the dog
    assert position[pairs[0][0]] < position[pairs[0][1]] and position[pairs[1][0]] > position[pairs[1][1]]
    data.coords[:, list(pairs[0])] = [-8.0, -6.5]  # two spots far from every other point
    data.coords[:, list(pairs[1])] = [8.0, -6.5]
    _open(driver, write_player(tmp_path / "order.html", data, highlight=["img-0005"]))
    for cat, dog in pairs:
        top = dog if position[dog] > position[cat] else cat
        x, y = driver.execute_script("return player.project(arguments[0])", cat)
        pixel = driver.execute_script(
            "const c = document.getElementById('scatter'), r = window.devicePixelRatio || 1;"
            "return Array.from(c.getContext('2d').getImageData(arguments[0] * r, arguments[1] * r, 1, 1).data)",
            x,
            y,
        )
        distance = {
            r: sum(abs(p - int(COLORS[data.labels[r]][k : k + 2], 16)) for p, k in zip(pixel, (1, 3, 5)))
            for r in (cat, dog)
        }
        assert distance[top] < distance[cat if top == dog else dog], (pixel, top)


def test_labels_of_clustered_outliers_do_not_overlap(driver, tmp_path):
    data = make_player_data()
    rows = data.board[0]
    data.coords[:, rows] = [8.9, 7.4]  # four outliers on one spot in the top-right corner
    data.coords[:, rows[1:], 0] -= np.array([0.02, 0.04, 0.06])[:, None].T
    _open(driver, write_player(tmp_path / "cluster.html", data, highlight=[data.ids[rows[0]]]))
    boxes = driver.execute_script("return player.stats.labels")
    w, h = driver.execute_script("return player.size()")
    assert len(boxes) >= 4  # the pinned id and at least three of the four ranks
    for k, (x, y, bw, bh) in enumerate(boxes):
        assert 0 <= x and x + bw <= w and 0 <= y and y + bh <= h
        for x2, y2, bw2, bh2 in boxes[k + 1 :]:
            assert x + bw <= x2 or x2 + bw2 <= x or y + bh <= y2 or y2 + bh2 <= y
