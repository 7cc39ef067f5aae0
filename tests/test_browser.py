"""The review page in a real headless Chromium: both scatterplots and the data map draw their
points, the issues widget lists the issue groups.

Spotlight draws scatterplot points on a 2-D canvas (the axes are SVG), so "rendered" here
means: inside the flexlayout tab of each scatterplot widget, the canvas has many saturated
pixels (the label colours) in several colours, against its near-white background. The
screenshot goes to ``build/test-artifacts/review.png`` (``build/`` is git-ignored); its path
is printed in the test output.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import make_synthetic_run, start_chromium

from spotreview.analysis.analyze import analyze
from spotreview.reviewing.exclusions import exclude
from spotreview.reviewing.issues import issue_groups
from spotreview.reviewing.layouts import DATA_MAP_PLOT, FIRST_PLOT, LAST_PLOT
from spotreview.reviewing.review import start_review
from spotreview.reviewing.table import build_table

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"

# Per scatterplot widget (found by its tab name): canvas pixels in saturated colours, and how
# many distinct coarse colours they have. The background (#fafcfe) is not saturated.
DRAWN_POINTS_JS = """
const out = {};
for (const button of document.querySelectorAll('.flexlayout__tab_button[data-layout-path]')) {
  const path = button.getAttribute('data-layout-path').replace(/\\/tb(\\d+)$/, '/t$1');
  const tab = document.querySelector(`.flexlayout__tab[data-layout-path="${path}"]`);
  if (!tab) continue;
  let pixels = 0; const colours = new Map();
  for (const canvas of tab.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) {
        pixels++; const key = `${r >> 5},${g >> 5},${b >> 5}`;
        colours.set(key, (colours.get(key) || 0) + 1);
      }
    }
  }
  // a colour counts when it fills at least a small point (not an anti-aliased edge)
  out[button.textContent.trim()] = {pixels, colours: [...colours.values()].filter(n => n >= 12).length};
}
return out;
"""


# Texts of the cells under the table's "label" header (by horizontal position; Spotlight's
# table is not an HTML table).
LABEL_CELLS_JS = """
// the issues widget names columns too (its chips, clipped ones included): leave it out
const issuesButton = [...document.querySelectorAll('.flexlayout__tab_button[data-layout-path]')]
  .find(b => b.textContent.trim() === 'issues');
const issuesTab = issuesButton && document.querySelector(`.flexlayout__tab[data-layout-path="${
  issuesButton.getAttribute('data-layout-path').replace(/\\/tb(\\d+)$/, '/t$1')}"]`);
const outside = e => !(issuesTab && issuesTab.contains(e));
// the review table is the leftmost of the other bottom tables (the label-issues table has one too)
const header = [...document.querySelectorAll('div, span')].filter(
  e => e.children.length === 0 && e.textContent.trim() === 'label' && outside(e)
    && e.getBoundingClientRect().top > window.innerHeight * 0.5)
  .sort((a, b) => a.getBoundingClientRect().left - b.getBoundingClientRect().left)[0];
if (!header) return [];
let cell = header;  // the header cell: the first ancestor as wide as a column
while (cell.parentElement && cell.getBoundingClientRect().width < 80) cell = cell.parentElement;
const h = cell.getBoundingClientRect();
const texts = [];
for (const e of document.querySelectorAll('div, span')) {
  if (e.children.length || !outside(e)) continue;
  const r = e.getBoundingClientRect();
  const cx = r.left + r.width / 2;
  const t = e.textContent.trim();
  if (t && r.top > h.bottom && r.bottom < window.innerHeight - 30 && cx > h.left && cx < h.right)
    texts.push(t);
}
return texts;
"""

# The inspector's sequence lenses draw their lines as SVG paths.
SEQUENCE_PATHS_JS = """
return [...document.querySelectorAll('svg path')].filter(p => {
  const r = p.getBoundingClientRect();
  return r.width > 20 && r.left > window.innerWidth * 0.6 && r.top < window.innerHeight * 0.6;
}).length;
"""


def _rendered(counts: dict, n_classes: int) -> bool:
    return counts.get(DATA_MAP_PLOT, {}).get("pixels", 0) >= 300 and all(
        counts.get(name, {}).get("pixels", 0) >= 300 and counts[name]["colours"] >= min(n_classes, PALETTE)
        for name in (FIRST_PLOT, LAST_PLOT)
    )


PALETTE = 10  # distinct category colours we require at most (Spotlight's palette has more)

CLASS_NAMES = {
    "numeric": tuple(str(d) for d in range(10)),  # the digits demo's class names
    "words": ("cat", "dog", "frog"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CLASS_NAMES))
def test_review_page_shows_and_colours_classes(tmp_path, capsys, kind):
    pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    names = CLASS_NAMES[kind]
    run = make_synthetic_run(tmp_path / "run", class_names=names, n_per_class=36 // len(names) + 1)
    analyze(run, quiet=True)
    table = build_table(run, save=False)
    top = table.sort_values("outlier_rank_last").iloc[0]["id"]
    exclude(run, [table.iloc[2]["id"]], reason="blurry")
    screenshot = SCREENSHOTS / f"review-{kind}.png"

    with start_review(run, open_browser=False, quiet=True) as session:
        # The served table: every class-name column has the class names as categories.
        api = json.load(urllib.request.urlopen(session.url + "api/table/", timeout=10))
        cols = {c["name"]: c for c in api["columns"]}
        for col in ("label", "prediction_first", "prediction_last"):
            assert set(cols[col]["dtype"]["categories"]) == set(names), cols[col]["dtype"]
        for col in ("outlier_rank_trajectory", "outlier_score_trajectory"):
            assert cols[col]["dtype"]["name"] == "Sequence1D"
        assert set(cols["outlier_status"]["dtype"]["categories"]) == {"persistent", "resolved", "emerging", "none"}
        row = list(table["id"]).index(top)
        cell = urllib.request.urlopen(
            f"{session.url}api/table/label/{row}?generation_id={api['generation_id']}", timeout=10
        ).read()
        assert json.loads(cell) == list(names).index(table.iloc[row]["label"])

        driver = start_chromium(tmp_path, (1600, 1000))  # the page's viewport pinned to 1600x1000
        try:
            driver.get(session.url)
            counts: dict = {}

            def drawn(d):
                counts.update(d.execute_script(DRAWN_POINTS_JS))
                return _rendered(counts, len(names))

            try:
                WebDriverWait(driver, 120, poll_frequency=0.5).until(drawn)
            except TimeoutException:
                raise AssertionError(f"scatterplots did not draw {len(names)} colours: {counts}") from None

            labels: list = []
            WebDriverWait(driver, 30).until(lambda d: labels.extend(d.execute_script(LABEL_CELLS_JS)) or labels)
            # The table is sorted by outlier rank at the last snapshot: its first label cells
            # show those rows' class names.
            expected = list(table.sort_values("outlier_rank_last")["label"][:5])
            assert labels[:5] == expected, (labels, expected)

            # Select the most atypical image at the last snapshot (the table's first row):
            # both plots highlight it, the inspector shows its image and its trajectories.
            driver.find_element(By.XPATH, f"//div[text()='{top}']").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('img')]"
                    ".some(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 50)"
                )
            )
            time.sleep(1)  # let the sequence lenses draw
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            assert driver.save_screenshot(str(screenshot))
            lines = driver.execute_script(SEQUENCE_PATHS_JS)
            text = driver.find_element(By.TAG_NAME, "body").text
            # The inspector names every value it shows (Markdown summary) and plots the
            # image's outlier rank and score over every snapshot.
            summary = table.set_index("id").at[top, "summary"]
            for line in ("image id " + top, "outlier rank (1 = most atypical) first"):
                assert line in text and line.replace("**", "") in summary.replace("**", ""), line
            assert lines >= 1, f"inspector line plots: {lines}"  # the second is scrolled below
            # The issues widget lists every issue group by its title.
            for group in issue_groups(table):
                assert group.title in text, group.title
        finally:
            driver.quit()
    with capsys.disabled():
        drawn_px = {name: counts[name] for name in (FIRST_PLOT, LAST_PLOT)}
        print(
            f"\nreview page screenshot: {screenshot}  (canvas: {drawn_px}; label cells {sorted(set(labels))}; "
            f"inspector svg paths {lines})"
        )
