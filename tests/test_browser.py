"""The review page in a real headless Chromium: both scatterplots draw their points.

Spotlight draws scatterplot points on a 2-D canvas (the axes are SVG), so "rendered" here
means: inside the flexlayout tab of each scatterplot widget, the canvas has many saturated
pixels (the label colours) in several colours, against its near-white background. The
screenshot goes to ``build/test-artifacts/review.png`` (``build/`` is git-ignored); its path
is printed in the test output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_synthetic_run, start_chromium

from spotreview.analysis import analyze
from spotreview.exclusions import exclude
from spotreview.layouts import FIRST_PLOT, LAST_PLOT
from spotreview.server import start_review

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "review.png"

# Per scatterplot widget (found by its tab name): canvas pixels in saturated colours, and how
# many distinct coarse colours they have. The background (#fafcfe) is not saturated.
DRAWN_POINTS_JS = """
const out = {};
for (const button of document.querySelectorAll('.flexlayout__tab_button[data-layout-path]')) {
  const path = button.getAttribute('data-layout-path').replace(/\\/tb(\\d+)$/, '/t$1');
  const tab = document.querySelector(`.flexlayout__tab[data-layout-path="${path}"]`);
  if (!tab) continue;
  let pixels = 0; const colours = new Set();
  for (const canvas of tab.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) {
        pixels++; colours.add(`${r >> 5},${g >> 5},${b >> 5}`);
      }
    }
  }
  out[button.textContent.trim()] = {pixels, colours: colours.size};
}
return out;
"""


def _rendered(counts: dict) -> bool:
    return all(
        counts.get(name, {}).get("pixels", 0) >= 300 and counts[name]["colours"] >= 3
        for name in (FIRST_PLOT, LAST_PLOT)
    )


@pytest.mark.slow
def test_review_page_renders_both_scatterplots(tmp_path, capsys):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = make_synthetic_run(tmp_path / "run")
    analyze(run, quiet=True)
    exclude(run, ["img-0002"], reason="blurry")

    with start_review(run, open_browser=False, quiet=True) as session:
        driver = start_chromium(tmp_path, (1600, 1000))
        try:
            driver.get(session.url)
            counts: dict = {}

            def drawn(d):
                counts.update(d.execute_script(DRAWN_POINTS_JS))
                return _rendered(counts)

            try:
                WebDriverWait(driver, 120, poll_frequency=0.5).until(drawn)
            except TimeoutException:
                raise AssertionError(f"scatterplots did not draw their points: {counts}") from None

            # Select the most atypical image at the last snapshot (the table's first row):
            # both plots highlight it and the inspector shows its image.
            driver.find_element(By.XPATH, "//div[text()='img-0035']").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('img')]"
                    ".some(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 50)"
                )
            )
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            assert driver.save_screenshot(str(SCREENSHOT))
        finally:
            driver.quit()
    with capsys.disabled():
        drawn_px = {name: counts[name] for name in (FIRST_PLOT, LAST_PLOT)}
        print(f"\nreview page screenshot: {SCREENSHOT}  (canvas pixels drawn: {drawn_px})")
