"""Shared helpers: tiny seeded runs built without training (for the stages after embed), an
analysed run (a fresh copy per test), a tiny ViT, and the check every failing command must pass."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotreview.rundir.atomic import save_npy, write_json
from spotreview.rundir.run import Run

# The tool turns analytics off by itself; tests must never phone home either way.
os.environ.setdefault("SPOTLIGHT_OPT_OUT", "true")


def make_synthetic_run(
    root: Path,
    *,
    n_per_class: int = 12,
    class_names: tuple[str, ...] = ("cat", "dog", "frog"),
    steps: tuple[int, ...] = (0, 5, 10, 20, 100),
    dim: int = 16,
    seed: int = 0,
) -> Run:
    """A run directory as ``finetune`` leaves it, with embeddings that separate over steps.

    Classes start as one blob (step 0) and drift apart linearly with the step index; the
    last row of the evaluation set is planted far away from everything as an outlier.
    Steps are deliberately not in lexical order (100 after 20).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    run = Run(root)
    n_classes = len(class_names)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    n = len(labels)
    ids = [f"img-{i:04d}" for i in range(n)]

    run.images_dir.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(0, 255, size=(n_classes, 3))
    for i, label in zip(ids, labels):
        pixels = np.clip(palette[label] + rng.normal(0, 30, size=(16, 16, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(run.image_path(i))

    pd.DataFrame(
        {
            "id": ids,
            "label": labels,
            "class_name": [class_names[k] for k in labels],
            "image": [f"images/{i}.png" for i in ids],
        }
    ).to_csv(run.eval_csv, index=False)
    write_json(
        run.manifest,
        {
            "model": "synthetic",
            "dataset": "synthetic",
            "class_names": list(class_names),
            "seed": seed,
            "num_images": n,
        },
    )

    centers = rng.normal(0, 1, size=(n_classes, dim))
    noise = rng.normal(0, 1, size=(n, dim))
    for k, step in enumerate(steps):
        spread = 6.0 * k / max(len(steps) - 1, 1)
        x = noise + spread * centers[labels]
        x[-1] = 40.0  # the planted outlier
        logits = spread * np.eye(n_classes)[labels] + rng.normal(0, 1, size=(n, n_classes))
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        save_npy(run.embedding_path(step), x.astype(np.float32))
        save_npy(run.probs_path(step), probs.astype(np.float32))

    log_steps = np.arange(1, steps[-1] + 1)
    pd.DataFrame(
        {
            "step": log_steps,
            "epoch": log_steps / steps[-1] * 2,
            "loss": 2.3 * np.exp(-log_steps / 30) + 0.1,
            "learning_rate": 1e-3,
        }
    ).to_csv(run.log_csv, index=False)
    return run


@pytest.fixture
def synthetic_run(tmp_path) -> Run:
    return make_synthetic_run(tmp_path / "run")


@pytest.fixture(scope="session")
def _analysed_template(tmp_path_factory) -> Run:
    from spotreview.analysis.analyze import analyze

    run = make_synthetic_run(tmp_path_factory.mktemp("analysed") / "run")
    analyze(run, quiet=True)
    return run


@pytest.fixture
def analysed_run(_analysed_template, tmp_path) -> Run:
    """An analysed, not approved synthetic run: a fresh copy for each test, so a test that
    changes it (exclusions, approval, deleted files) never affects another."""
    root = tmp_path / "analysed" / "run"  # beside, not on, synthetic_run's folder
    shutil.copytree(_analysed_template.root, root)
    return Run(root)


def tiny_vit(seed: int = 0, *, head: bool = True, num_labels: int = 3, intermediate_size: int = 32):
    """A seeded 16x16 ViT of one layer (a classifier, or the base model without a head)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=intermediate_size,
        num_labels=num_labels,
    )
    return ViTForImageClassification(config) if head else ViTModel(config, add_pooling_layer=False)


def vit_processor():
    """The image processor of :func:`tiny_vit` (the PIL one: no torchvision needed)."""
    import transformers

    cls = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)
    return cls(size={"height": 16, "width": 16})


def assert_close_float32(actual, expected, *, ulps: int = 32) -> None:
    """``actual``, a float32 result, equals ``expected`` to within ``ulps`` float32 steps at the
    magnitude of ``expected``'s largest entry. Float32 rounding at that magnitude is what BLAS
    vendors and CPU instruction sets vary, so an absolute tolerance below it fails on some CPUs."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    atol = ulps * float(np.finfo(np.float32).eps) * max(scale, 1.0)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=atol)


def cli_error(result, code: int = 1) -> str:
    """The one ``Error: ...`` line of a command that failed as users must see it: exit
    ``code``, exactly one line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def start_chromium(profile_parent: Path, size: tuple[int, int] = (1600, 1000)):
    """A selenium-driven headless Chromium whose page viewport is exactly ``size``; the
    browser console is kept for ``driver.get_log("browser")``. Skips the test without
    chromium and chromedriver. The caller quits the driver."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=profile_parent)}",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # The window size includes browser chrome; pin the page's viewport itself.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False},
    )
    return driver
