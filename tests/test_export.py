"""spotreview.export (animation.py, scene.py, figure.py, writers.py): GIF/MP4/HTML round
trips, approval gate, leaderboard, streaming, bad input, CLI."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import cli_error
from PIL import Image

from spotreview.analysis.store import load_analysis
from spotreview.cli import cli
from spotreview.errors import ExportError
from spotreview.rendering.export import export
from spotreview.rendering.figure import Renderer
from spotreview.rendering.scene import build_scene, frame_sources, leaderboard
from spotreview.reviewing.approval import approve
from spotreview.reviewing.exclusions import exclude

OUTLIER = "img-0035"  # conftest plants the last row far away from everything
SMALL = (320, 180)  # the smallest frame export lays out: fast tests
S = 5  # snapshots in the synthetic run


@pytest.fixture
def unapproved(analysed_run):
    """A fresh copy of an analysed, not yet approved synthetic run (conftest)."""
    return analysed_run


@pytest.fixture
def run(unapproved):
    approve(unapproved, by="test")
    return unapproved


def _frames(n_snapshots: int, tween: int) -> int:
    return n_snapshots + tween * (n_snapshots - 1)


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def _refusal(run, what: str, again: str = "") -> str:
    return (
        f"cannot export {run.root}: {what}; review it with `spotreview review {run.root}`, "
        f"approve it{again} with `spotreview approve {run.root}`, or pass --force to export anyway"
    )


@pytest.fixture
def warnings_logged(caplog):
    """The warning messages the export logs (the CLI shows each as one `warning:` line)."""
    caplog.set_level(logging.WARNING, logger="spotreview")
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- formats, read back -------------------------------------------------------------------


def test_gif_frames_size_loop_and_durations(run):
    import imageio.v3 as iio

    done = export(run, size=SMALL, tween=1, fps=5, quiet=True)
    path = done.path
    assert path == run.root / "animation.gif" and done.still is None
    assert (done.format, done.frames, done.fps, done.size) == ("gif", _frames(S, 1), 5.0, list(SMALL))
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (_frames(S, 1), SMALL[1], SMALL[0])
    with Image.open(path) as im:
        assert im.info["loop"] == 0  # loop forever
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    assert durations[:-1] == [200] * (len(durations) - 1)  # 1000 / fps, set explicitly
    assert durations[-1] == 1500  # the end state is held before the loop restarts
    assert not (frames[0] == frames[-1]).all()  # the cloud moved
    assert _leftovers(run.root) == []


def test_mp4_is_h264_with_even_size(run, warnings_logged):
    import imageio.v2 as iio2

    path = export(run, run.root / "a.mp4", size=(321, 181), tween=2, quiet=True).path
    assert warnings_logged() == ["H.264 needs an even frame size; using 322x182"]
    with iio2.get_reader(path, format="FFMPEG") as reader:
        meta = reader.get_meta_data()
        assert meta["codec"] == "h264" and meta["size"] == (322, 182)
        assert meta["pix_fmt"].startswith("yuv420p")
        assert reader.count_frames() == _frames(S, 2)
        assert reader.get_data(0).shape == (182, 322, 3)


def test_html_frames_is_a_self_contained_player(run):
    path = export(run, run.root / "player.html", size=SMALL, tween=1, fps=4, quiet=True, html_player="frames").path
    html = path.read_text()
    n = _frames(S, 1)
    assert html.count("data:image/png;base64,") == n  # every frame embedded, none dropped
    assert f"frames[{n - 1}]" in html and f"frames[{n}]" not in html
    assert 'type="range"' in html  # the snapshot slider
    assert "play_animation" in html and "pause_animation" in html
    assert re.search(r"slider_id, 250(\.0)?,", html)  # 1000 / fps ms between frames
    assert '.fa-play::before { content: "\\25B6"; }' in html
    assert "http://" not in html and "https://" not in html  # works offline: icons inline


def test_still_of_a_chosen_snapshot_instead_of_the_animation(run):
    first = export(run, still=run.root / "first.png", still_step=0, size=SMALL, quiet=True).path
    last = export(run, still=run.root / "last.png", size=SMALL, quiet=True).path
    assert first == run.root / "first.png" and last == run.root / "last.png"
    assert not (run.root / "animation.gif").exists()  # a still replaces the animation...
    a, b = np.asarray(Image.open(first)), np.asarray(Image.open(last))
    assert a.shape == b.shape == (SMALL[1], SMALL[0], 3) and not (a == b).all()
    both = export(run, run.root / "x.gif", still=run.root / "s.png", size=SMALL, quiet=True)
    assert both.path == run.root / "x.gif" and (run.root / "s.png").is_file()  # ...unless out is given
    record = json.loads(run.export_record.read_text())
    assert record["out"] == both.out == str(run.root / "x.gif")
    assert record["still"] == both.still == str(run.root / "s.png")


def test_two_workers_give_the_same_file_as_one(run):
    one = export(run, run.root / "one.gif", size=SMALL, tween=2, workers=1, quiet=True).path
    two = export(run, run.root / "two.gif", size=SMALL, tween=2, workers=2, quiet=True).path
    assert one.read_bytes() == two.read_bytes()


# --- what a frame shows -----------------------------------------------------------------


def test_frame_plan_interpolates_coordinates_and_follows_the_nearer_snapshot(run):
    assert [s[::2] for s in frame_sources(3, 3)] == [
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 1),
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 2),
        (2, 2),
    ]  # t = 0, 1/4, 1/2 stay with the earlier snapshot; t = 3/4 shows the next one
    analysis = load_analysis(run)
    scene = build_scene(analysis, tween=3, size=SMALL)
    assert scene.n_frames == _frames(S, 3)
    np.testing.assert_allclose(scene.coords_at(4), analysis.coords[1])
    np.testing.assert_allclose(scene.coords_at(2), (analysis.coords[0] + analysis.coords[1]) / 2)
    assert scene.titles[0].startswith("step 0   ·   epoch 0.00")
    assert scene.titles[-1].startswith("step 100   ·   epoch 2.00")  # epoch from log.csv


def test_axes_fit_every_frame_at_equal_scale_and_loss_revealed_up_to_the_step(run):
    scene = build_scene(load_analysis(run), tween=2, size=SMALL)  # frames != snapshots
    r = Renderer(scene)
    x0, x1, y0, y1 = limits = r.ax.get_xlim() + r.ax.get_ylim()
    # One data unit is as many pixels across as up, so distances in the picture are faithful.
    box = r.ax.get_window_extent()
    assert (x1 - x0) / box.width == pytest.approx((y1 - y0) / box.height, rel=1e-2)
    # Tight: the cloud of all snapshots is centred and fills the binding axis but a 5 % margin.
    lo, hi = scene.coords.reshape(-1, 2).min(0), scene.coords.reshape(-1, 2).max(0)
    np.testing.assert_allclose([(x0 + x1) / 2, (y0 + y1) / 2], (lo + hi) / 2, rtol=1e-5, atol=1e-6)
    assert max((hi - lo) / [x1 - x0, y1 - y0]) == pytest.approx(1 / 1.1, rel=1e-4)
    log_steps, _ = scene.loss
    for f in range(scene.n_frames):
        r.render(f)
        assert r.ax.get_xlim() + r.ax.get_ylim() == limits  # fixed for every frame
        xy = scene.coords_at(f)  # interpolated between snapshots
        drawn = np.concatenate([line.get_xydata() for line, _ in r.groups])
        assert len(drawn) == len(xy) and np.isin(drawn, xy).all()  # the frame's points are drawn...
        assert (xy[:, 0] > x0).all() and (xy[:, 0] < x1).all()  # ...and all inside the axes
        assert (xy[:, 1] > y0).all() and (xy[:, 1] < y1).all()
        step = scene.steps[scene.source(f)[2]]  # the snapshot the frame shows
        np.testing.assert_array_equal(r.loss_line.get_xdata(), log_steps[log_steps <= step])
        assert r.now.get_xdata()[0] == step
    assert r.loss_line.get_xdata().max() == 100 and r.loss_dot.get_xdata()[0] == 100


def test_excluded_rows_never_reach_the_leaderboard(run):
    analysis = load_analysis(run)
    excluded = {OUTLIER, analysis.ids[int(analysis.top(2, 1)[0])]}
    boards = leaderboard(analysis, top_k=8, exclude=excluded)
    assert len(boards) == S
    for i, rows in enumerate(boards):
        shown = {analysis.ids[r] for r in rows}
        assert len(rows) == 8 and not shown & excluded
        # lowest score first, and nothing better was skipped except the exclusions
        scores = analysis.scores[i, rows]
        assert (np.diff(scores) >= 0).all()
        others = np.setdiff1d(np.arange(len(analysis.ids)), rows)
        others = [r for r in others if analysis.ids[r] not in excluded]
        assert scores.max() <= analysis.scores[i, others].min()
    assert OUTLIER in {analysis.ids[r] for r in leaderboard(analysis, top_k=8)[-1]}


def test_an_excluded_image_is_not_drawn(run):
    # Paint the planted outlier pure magenta: it is #1 on the last leaderboard.
    Image.new("RGB", (16, 16), (255, 0, 255)).save(run.image_path(OUTLIER))

    def magenta_pixels(path):
        px = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
        return int((px == (255, 0, 255)).all(1).sum())

    shown = export(run, still=run.root / "shown.png", size=SMALL, force=True, quiet=True).path
    assert magenta_pixels(shown) > 100
    exclude(run, [OUTLIER], reason="test")
    approve(run, by="test")
    hidden = export(run, still=run.root / "hidden.png", size=SMALL, quiet=True).path
    assert magenta_pixels(hidden) == 0
    assert json.loads(run.export_record.read_text())["excluded"] == 1


# --- approval gate ----------------------------------------------------------------------


def test_refuses_an_unapproved_run(unapproved):
    with pytest.raises(ExportError) as e:
        export(unapproved, size=SMALL, quiet=True)
    assert str(e.value) == _refusal(unapproved, "it is not approved (no approval.json)")
    assert not (unapproved.root / "animation.gif").exists()
    assert not unapproved.export_record.exists()


def test_refuses_a_stale_approval(run):
    at = json.loads(run.approval.read_text())["at"]
    exclude(run, ["img-0003"], reason="blurry")
    with pytest.raises(ExportError) as e:
        export(run, size=SMALL, quiet=True)
    why = f"the exclusions changed since test approved it at {at}"
    assert str(e.value) == _refusal(run, f"its approval is stale ({why})", " again")
    assert not (run.root / "animation.gif").exists()


def test_force_renders_warns_and_is_recorded(unapproved, warnings_logged):
    done = export(unapproved, size=SMALL, force=True, quiet=True)
    path = done.path
    assert path.is_file() and done.forced is True
    assert warnings_logged() == [
        f"exporting {unapproved.root} although it is not approved (no approval.json); forced, recorded in export.json"
    ]
    record = json.loads(unapproved.export_record.read_text())
    assert record["forced"] is True and record["approval"]["state"] == "missing"
    assert record["frames"] == S and record["format"] == "gif" and record["out"] == str(path)


def test_approved_export_is_recorded_unforced(run):
    done = export(run, size=SMALL, quiet=True)
    record = json.loads(run.export_record.read_text())
    assert record == dataclasses.asdict(done)  # what export returns is what it recorded
    approval = json.loads(run.approval.read_text())
    assert record["forced"] is False and record["approval"]["state"] == "approved"
    assert record["approval"]["digest"] == approval["digest"]


# --- interrupted, bad input -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ".html"])
def test_interrupted_export_leaves_no_file(run, monkeypatch, suffix):
    out = run.root / f"anim{suffix}"
    frames = {"html_player": "frames"} if suffix == ".html" else {}  # the frames it renders
    out_before = export(run, out, size=SMALL, quiet=True, **frames).path.read_bytes()  # a finished file...
    render = Renderer.render
    calls = []

    def render_then_fail(self, frame):
        calls.append(frame)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(self, frame)

    monkeypatch.setattr(Renderer, "render", render_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export(run, out, size=SMALL, tween=3, workers=1, quiet=True, **frames)
    assert out.read_bytes() == out_before  # ...is never replaced by a half-written one
    assert _leftovers(run.root) == []
    out.unlink()
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        export(run, out, size=SMALL, tween=3, workers=1, quiet=True, **frames)
    assert not out.exists() and _leftovers(run.root) == []


def test_missing_log_renders_without_the_curve_and_says_so(run, warnings_logged):
    run.log_csv.unlink()
    approve(run, by="test")
    path = export(run, size=SMALL, quiet=True).path
    assert path.is_file()
    assert warnings_logged() == [f"{run.log_csv} is missing; rendering without the loss curve"]
    scene = build_scene(load_analysis(run), size=SMALL)
    assert scene.loss is None and "epoch" not in scene.titles[-1]


def test_missing_leaderboard_images_become_blank_tiles(run, warnings_logged):
    for i in range(30, 36):
        run.image_path(f"img-{i:04d}").unlink()
    run.image_path("img-0029").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # corrupt: also blank
    approve(run, by="test")  # the approval covers the images: approve what is there now
    path = export(run, size=SMALL, quiet=True).path
    assert path.is_file()
    boards = leaderboard(load_analysis(run), top_k=8)
    count = len({int(r) for rows in boards for r in rows if r >= 29})
    assert count > 0
    assert warnings_logged() == [
        f"{count} leaderboard image(s) missing or unreadable under {run.images_dir}; shown as blank tiles"
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(out="anim.avi"), "cannot export to {out}: unknown format '.avi'; use .gif, .mp4 or .html"),
        (dict(out="anim"), "cannot export to {out}: unknown format '(no suffix)'; use .gif, .mp4 or .html"),
        (
            dict(out="missing-dir/anim.gif"),
            "cannot write the animation to {out}: directory {out.parent} "
            "does not exist; create it or choose another path",
        ),
        (dict(still="s.jpg"), "--still {still} must be a .png file"),
        (
            dict(still="nowhere/s.png"),
            "cannot write the still to {still}: directory {still.parent} "
            "does not exist; create it or choose another path",
        ),
        (dict(still="s.png", still_step=7), "no snapshot at step 7; snapshots are at steps 0, 5, 10, 20, 100"),
        (dict(still_step=5), "still_step picks the frame of --still; give --still FILE.png too"),
        (dict(size="big"), "size 'big' is not WxH in pixels, e.g. 1280x720"),
        (dict(size=(100, 50)), "size 100x50 is too small to lay out a frame; use at least 320x180"),
        (
            dict(fps=60),
            "fps 60 is too fast for a GIF (viewers slow frames under 20 ms to 100 ms); use --fps 50 or less, or .mp4",
        ),
        (dict(fps=0), "fps must be positive, got 0"),
        (dict(tween=-1), "tween must be 0 or more frames between snapshots, got -1"),
        (dict(top_k=0), "top_k must be at least 1, got 0"),
    ],
)
def test_bad_input_is_one_line(run, kwargs, message):
    for key in ("out", "still"):
        if key in kwargs:
            kwargs[key] = run.root / kwargs[key]
    with pytest.raises(ExportError) as e:
        export(run, quiet=True, **kwargs)
    assert str(e.value) == message.format(**kwargs)
    assert not any(p.suffix in (".gif", ".png", ".avi") for p in run.root.iterdir())


def test_missing_ffmpeg_is_one_line(run, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(run.root / "no-ffmpeg"))
    with pytest.raises(ExportError) as e:
        export(run, run.root / "a.mp4", size=SMALL, quiet=True)
    assert str(e.value) == (
        f"ffmpeg {str(run.root / 'no-ffmpeg')!r} (IMAGEIO_FFMPEG_EXE) does not exist; "
        "install it with `pip install imageio-ffmpeg` or export a .gif instead"
    )
    assert not (run.root / "a.mp4").exists()


# --- command line -----------------------------------------------------------------------------


def test_cli_export_prints_the_path(run):
    result = CliRunner().invoke(
        cli, ["export", str(run.root), "--out", str(run.root / "a.gif"), "--size", "320x180", "--tween", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {run.root / 'a.gif'} ({_frames(S, 1)} frames)"


def test_cli_refuses_then_forces(unapproved):
    args = ["export", str(unapproved.root), "--size", "320x180", "-q"]
    refused = CliRunner().invoke(cli, args)
    assert cli_error(refused) == "Error: " + _refusal(unapproved, "it is not approved (no approval.json)")
    forced = CliRunner().invoke(cli, args + ["--force"])
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.splitlines() == [
        f"wrote {unapproved.root / 'animation.gif'} ({S} frames)",
        "forced: not approved (missing)",
    ]
    # The library's warning reaches the user as one line on stderr.
    assert forced.stderr == (
        f"warning: exporting {unapproved.root} although it is not approved (no approval.json); "
        "forced, recorded in export.json\n"
    )


def test_cli_still_and_bad_suffix(run):
    still = CliRunner().invoke(
        cli, ["export", str(run.root), "--still", str(run.root / "s.png"), "--still-step", "5", "--size", "320x180"]
    )
    assert still.exit_code == 0 and still.output.strip() == f"wrote {run.root / 's.png'}"
    bad = CliRunner().invoke(cli, ["export", str(run.root), "--out", str(run.root / "a.webm")])
    assert cli_error(bad) == (
        f"Error: cannot export to {run.root / 'a.webm'}: unknown format '.webm'; use .gif, .mp4 or .html"
    )


# --- the HTML player in a real browser ----------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def test_html_player_plays_pauses_and_seeks_offline_in_chromium(run, tmp_path):
    import os
    import tempfile
    import time

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = export(run, run.root / "player.html", size=SMALL, tween=1, fps=20, quiet=True, html_player="frames").path
    n = _frames(S, 1)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(path.as_uri())
        slider = driver.find_element(By.CSS_SELECTOR, "input[type=range]")
        image = driver.find_element(By.CSS_SELECTOR, ".animation img")
        WebDriverWait(driver, 20).until(lambda d: image.get_property("naturalWidth") == SMALL[0])
        assert int(slider.get_attribute("max")) == n - 1
        icon = driver.execute_script("return getComputedStyle(document.querySelector('.fa-play'), '::before').content")
        assert icon == '"\u25b6"'  # the buttons have visible icons without the CDN

        driver.find_element(By.CSS_SELECTOR, "button[title=Pause]").click()
        first = image.get_attribute("src")
        driver.find_element(By.CSS_SELECTOR, "button[title=Play]").click()
        WebDriverWait(driver, 20).until(lambda d: int(slider.get_property("value")) >= 3)
        driver.find_element(By.CSS_SELECTOR, "button[title=Pause]").click()
        paused = slider.get_property("value")
        time.sleep(0.5)
        assert slider.get_property("value") == paused  # pause stops it
        assert image.get_attribute("src") != first  # playing showed other frames

        driver.find_element(By.CSS_SELECTOR, "button[title='Last frame']").click()
        assert int(slider.get_property("value")) == n - 1
        requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert not [r for r in requests if r.startswith("http")]  # nothing from the network
    finally:
        driver.quit()
