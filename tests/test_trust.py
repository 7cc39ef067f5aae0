"""The trustworthiness of the 2-D picture (analysis/trust.py) against sklearn's exact
``sklearn.manifold.trustworthiness`` on the same metric, its edge cases, and its place in
``analyze``'s results.

Tolerances: with every image in the sample (n <= SAMPLE) the value is exact, so it may differ
from sklearn's only where two distances tie to within float32 rounding (sklearn ranks float32
cosine distances, we float32 similarities): each swap of two adjacent ranks moves T by one
``_unit``. Sampled, the estimate's spread over seeds is ~0.003 at these sizes (the scripts
behind benchmarks/RESULTS.md), so 0.015 is about five standard deviations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import make_synthetic_run
from sklearn.manifold import trustworthiness as sklearn_trustworthiness

from spotreview.analysis.analyze import analyze
from spotreview.analysis.outliers import cleanlab_neighbors
from spotreview.analysis.projection import pca_2d
from spotreview.analysis.store import load_analysis
from spotreview.analysis.trust import SAMPLE, trustworthiness
from spotreview.defaults import TRUST_K, TRUST_LOW

SAMPLED_TOLERANCE = 0.015


def _unit(n: int, k: int = TRUST_K) -> float:
    """How much one rank more or less of one pair moves T."""
    return 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def _shape(kind: str, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 embeddings whose 2-D PCA is a good, a poor or a middling picture."""
    rng = np.random.default_rng(seed)
    if kind == "preserved":  # a 2-D sheet with a little noise: PCA keeps the neighbours
        x = (rng.normal(size=(n, 2)) * [5.0, 3.0]) @ rng.normal(size=(2, dim)) + 3.0
        return (x + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    if kind == "random":  # an isotropic blob: any 2-D projection is a random picture
        return rng.normal(size=(n, dim)).astype(np.float32)
    labels = rng.integers(0, 10, n)  # "clustered": ten clusters around a shared offset
    centres = rng.normal(size=(10, dim))
    return (2.0 + 0.6 * centres[labels] + rng.normal(size=(n, dim))).astype(np.float32)


def _ours_and_sklearn(x: np.ndarray, **kwargs) -> tuple[float, float]:
    _, neighbours, metric = cleanlab_neighbors(x, 10)
    low = pca_2d(x)
    ours = trustworthiness(x, neighbours, low, **kwargs)
    return ours, float(sklearn_trustworthiness(x, low, n_neighbors=TRUST_K, metric=metric))


@pytest.mark.parametrize("kind", ["preserved", "random", "clustered"])
@pytest.mark.parametrize("dim", [3, 48])  # euclidean (cleanlab's metric up to 3 columns), cosine
def test_exact_when_every_image_is_in_the_sample(kind, dim):
    x = _shape(kind, 200, dim)
    assert len(x) <= SAMPLE
    ours, theirs = _ours_and_sklearn(x)
    assert abs(ours - theirs) <= 4 * _unit(len(x)), (ours, theirs)


@pytest.mark.parametrize(
    "kind, low_bound, high_bound", [("preserved", 0.99, 1.0), ("random", 0.5, 0.65), ("clustered", 0.6, 0.95)]
)
@pytest.mark.parametrize("dim", [3, 96])
def test_sampled_estimate_is_close_to_sklearn(kind, low_bound, high_bound, dim):
    x = _shape(kind, 1500, dim, seed=1)
    ours, theirs = _ours_and_sklearn(x)
    assert abs(ours - theirs) <= SAMPLED_TOLERANCE, (ours, theirs)
    if dim > 3:  # the shapes are the pictures they are meant to be (a 3-D blob keeps much in 2-D)
        assert low_bound <= theirs <= high_bound


def test_sampled_rows_and_seeds():
    """A subset of the rows, scaled up, is still close; a seed gives one value, always."""
    x = _shape("clustered", 1500, 96, seed=2)
    _, neighbours, metric = cleanlab_neighbors(x, 10)
    low = pca_2d(x)
    theirs = sklearn_trustworthiness(x, low, n_neighbors=TRUST_K, metric=metric)
    values = [trustworthiness(x, neighbours, low, rows=600, seed=s) for s in range(4)]
    assert max(abs(v - theirs) for v in values) <= SAMPLED_TOLERANCE, (values, theirs)
    assert len(set(values)) > 1 and trustworthiness(x, neighbours, low, rows=600, seed=3) == values[3]


def test_too_few_images_is_nan_and_just_enough_is_exact():
    rng = np.random.default_rng(0)
    for n in (11, 15, 2 * TRUST_K):  # T(k) needs more than 2k images (sklearn refuses them too)
        x = rng.normal(size=(n, 8)).astype(np.float32)
        _, neighbours, _ = cleanlab_neighbors(x, 10)
        assert math.isnan(trustworthiness(x, neighbours, pca_2d(x)))
    x = rng.normal(size=(2 * TRUST_K + 1, 8)).astype(np.float32)
    ours, theirs = _ours_and_sklearn(x)
    assert abs(ours - theirs) <= 4 * _unit(len(x))


def test_duplicates_zero_rows_and_one_spot():
    """Exact duplicates (cleanlab puts them first), zero rows (cosine distance 1 to all) and a
    set whose points all coincide: a value in [0, 1], near sklearn's where ties leave room."""
    x = _shape("clustered", 400, 32, seed=3)
    x[10:40] = x[9]  # 31 copies of one image: more than k, so ties decide who is a neighbour
    x[50:53] = 0
    ours, theirs = _ours_and_sklearn(x)
    assert 0 <= ours <= 1 and abs(ours - theirs) <= SAMPLED_TOLERANCE, (ours, theirs)
    same = np.ones((30, 8), dtype=np.float32)
    _, neighbours, _ = cleanlab_neighbors(same, 10)
    assert 0 <= trustworthiness(same, neighbours, pca_2d(same)) <= 1


def test_bad_shapes_are_refused():
    x = np.zeros((30, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"low \(n, 2\)"):
        trustworthiness(x, np.zeros((30, 10), dtype=int), np.zeros((30, 3)))
    with pytest.raises(ValueError, match=r"K >= k = 10"):
        trustworthiness(x, np.zeros((30, 5), dtype=int), np.zeros((30, 2)))


# --- in analyze --------------------------------------------------------------------------


def test_analyze_stores_the_trustworthiness_of_the_aligned_picture(synthetic_run):
    """36 images: exact, and equal to sklearn's on the *aligned* coordinates, which have the raw
    PCA's 2-D neighbours (the alignment rotates, reflects and shifts)."""
    a = analyze(synthetic_run, quiet=True)
    for s, step in enumerate(a.steps):
        x = np.load(synthetic_run.embedding_path(int(step)))
        theirs = sklearn_trustworthiness(x, a.coords[s], n_neighbors=TRUST_K, metric="cosine")
        assert abs(a.trustworthiness[s] - theirs) <= 4 * _unit(len(x)), (step, a.trustworthiness[s], theirs)
    # conftest's classes start as one blob and drift apart: the picture gets better
    assert a.trustworthiness[-1] > a.trustworthiness[0]
    np.testing.assert_array_equal(load_analysis(synthetic_run).trustworthiness, a.trustworthiness)


def test_analyze_of_a_tiny_set_gives_nan_and_null(tmp_path):
    run = make_synthetic_run(tmp_path / "tiny", n_per_class=5)  # 15 images
    a = analyze(run, quiet=True)
    assert np.isnan(a.trustworthiness).all() and a.trustworthiness.shape == (5,)
    summary = json.loads((run.analysis_dir / "summary.json").read_text())
    assert [s["trustworthiness"] for s in summary["snapshots"]] == [None] * 5


# --- shown in the frames and the player ---------------------------------------------------


def test_frame_titles_show_it_and_flag_low_values(analysed_run):
    from spotreview.rendering.figure import Renderer
    from spotreview.rendering.scene import build_scene

    a = load_analysis(analysed_run)
    scene = build_scene(a)
    assert a.trustworthiness[0] < TRUST_LOW <= a.trustworthiness[-1]  # conftest: one blob, then classes
    assert scene.titles[0].endswith(
        f"eval accuracy {a.accuracy[0]:.0%}   ·   trustworthiness {a.trustworthiness[0]:.2f} (low)"
    )
    assert scene.titles[-1].endswith(f"   ·   trustworthiness {a.trustworthiness[-1]:.2f}")
    assert scene.subtitles[-1].endswith(f"36 images   ·   kNN accuracy {a.knn_accuracy[-1]:.0%}")
    # the longest title there can be stays inside the frame
    scene.titles[0] = "step 123,456   ·   epoch 123.45   ·   eval accuracy 100%   ·   trustworthiness 0.79 (low)"
    r = Renderer(scene)
    r.render(0)
    box = r.title.get_window_extent(r.canvas.get_renderer())
    assert 0 < box.x0 and box.x1 < scene.size[0] - 20


def test_player_data_and_panel_in_chromium(analysed_run, tmp_path):
    import time

    from conftest import start_chromium
    from selenium.webdriver.support.ui import WebDriverWait

    from spotreview.rendering.player import player_data, write_player

    a = load_analysis(analysed_run)
    page = write_player(tmp_path / "p.html", player_data(a, top_k=4))
    text = page.read_text("utf-8")
    doc = json.loads(text.split('id="spotreview-data">\n', 1)[1].split("\n</script>", 1)[0])
    assert doc["trust"] == {"k": TRUST_K, "low": TRUST_LOW}
    np.testing.assert_allclose([s["trustworthiness"] for s in doc["snapshots"]], a.trustworthiness, rtol=1e-5)

    driver = start_chromium(tmp_path, (1400, 900))
    try:
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        box = driver.find_element("id", "trust")
        assert box.text.startswith(f"2-D picture: trustworthiness {a.trustworthiness[0]:.2f} (low) · kNN accuracy ")
        assert "misplaces which images are neighbours" in box.text and box.get_attribute("data-low") == "1"
        driver.execute_script("player.goTo(4)")
        WebDriverWait(driver, 5).until(lambda d: "(low)" not in box.text)
        time.sleep(0.3)
        assert box.text.startswith(f"2-D picture: trustworthiness {a.trustworthiness[-1]:.2f} · kNN accuracy ")
        assert "10 nearest neighbours" in box.text and box.get_attribute("data-low") == ""
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()
