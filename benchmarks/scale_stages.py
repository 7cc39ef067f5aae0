"""The scale check's stages that are library calls rather than commands, each run as its own
process by ``bench_scale``: ``python -m benchmarks.scale_stages table|review RUN``.

``table``: ``build_table(RUN)`` (what ``spotreview review`` builds before it serves), saved as
``review.parquet``. ``review``: ``start_review(RUN)`` (Spotlight serving the table), then the
page in headless Chromium until the review table shows rows. Each prints one JSON line:
seconds of the call(s) and peak RSS (``VmHWM``) of this process and, for ``review``, of the
Spotlight server it started (its child, read before it is closed).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGE_TIMEOUT_S = 600.0

# Rows are showing when the review table's id cells are drawn (ids look like img-000123).
ROWS_SHOWN_JS = """
return [...document.querySelectorAll('div, span')].filter(
  e => e.children.length === 0 && /^img-\\d{6}$/.test(e.textContent.trim())).length;
"""


def peak_gib(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process, GiB; 0 when it is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from ``/proc/PID/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def table(run: str) -> dict:
    from spotreview.reviewing.table import build_table

    start = time.perf_counter()
    df = build_table(run)
    return dict(seconds=time.perf_counter() - start, rows=len(df), peak_gib=peak_gib())


def _chromium(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.add_argument("--window-size=1600,1000")
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def review(run: str) -> dict:
    """Serve ``run`` and load its page; the Spotlight server's peak is read while it runs."""
    from spotreview.reviewing.review import start_review

    start = time.perf_counter()
    running = start_review(run, open_browser=False, quiet=True)
    served = time.perf_counter() - start
    try:
        server = descendants(os.getpid())  # Spotlight's server, before the browser starts
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            page, cells = _rows_shown(running.url, profile)
        server_peak = max((peak_gib(p) for p in server), default=0.0)
    finally:
        running.close()
    return dict(
        seconds_to_serve=served, seconds_to_rows=page, id_cells=cells, peak_gib=peak_gib(), server_peak_gib=server_peak
    )


def _rows_shown(url: str, profile: str) -> tuple[float, int]:
    """Seconds from asking headless Chromium for ``url`` until the table shows rows, and the
    id cells it then shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(profile)
    try:
        start = time.perf_counter()
        driver.get(url)
        WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.25).until(lambda d: d.execute_script(ROWS_SHOWN_JS) > 0)
        return time.perf_counter() - start, driver.execute_script(ROWS_SHOWN_JS)
    finally:
        driver.quit()


if __name__ == "__main__":
    what, path = sys.argv[1], sys.argv[2]
    print(json.dumps({"table": table, "review": review}[what](path)), flush=True)
