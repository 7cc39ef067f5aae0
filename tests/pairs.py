"""Two runs of the same evaluation images for the comparison tests, built without training.

Run A is ``conftest.make_synthetic_run`` (36 images, 3 classes, snapshots 0, 5, 10, 20, 100).
Run B holds the same images and labels, its ``eval.csv`` rows in another order (matched by id),
three snapshots of its own (0, 10, 40) and its own loss log. At the last snapshot of each run
the predictions are planted: ``FIXED`` wrong in A and right in B, ``BROKEN`` right in A and wrong
in B, ``BOTH_WRONG`` wrong in both, every other image right in both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import make_synthetic_run

from spotreview.rundir.atomic import save_npy
from spotreview.rundir.run import Run

FIXED = ("img-0000", "img-0001", "img-0013")
BROKEN = ("img-0002", "img-0020")
BOTH_WRONG = ("img-0030",)
STEPS_B = (0, 10, 40)


def _last_probs(labels: np.ndarray, ids: list[str], wrong: set[str]) -> np.ndarray:
    """(n, 3) float32: p(label) 0.8 where right, 0.1 where wrong (the next class gets 0.8)."""
    probs = np.full((len(labels), 3), 0.1, np.float32)
    for row, (label, image_id) in enumerate(zip(labels, ids)):
        probs[row, (label + 1) % 3 if image_id in wrong else label] = 0.8
    return probs


def make_pair(root: Path) -> tuple[Run, Run]:
    """Runs A and B under ``root`` (not analysed)."""
    a = make_synthetic_run(root / "a")
    listing = pd.read_csv(a.eval_csv, dtype={"id": str})
    save_npy(a.probs_path(100), _last_probs(listing["label"].to_numpy(), listing["id"].tolist(), {*FIXED, *BOTH_WRONG}))

    b = Run(root / "b")
    shutil.copytree(a.root, b.root)
    shutil.rmtree(b.embeddings_dir)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(listing))
    listing = listing.iloc[order].reset_index(drop=True)
    listing.to_csv(b.eval_csv, index=False)
    labels, ids = listing["label"].to_numpy(), listing["id"].tolist()
    centers = rng.normal(0, 1, (3, 16))
    noise = rng.normal(0, 1, (len(labels), 16))
    for k, step in enumerate(STEPS_B):
        spread = 5.0 * k / (len(STEPS_B) - 1)
        x = (noise + spread * centers[labels]).astype(np.float32)
        logits = spread * np.eye(3)[labels] + rng.normal(0, 1, (len(labels), 3))
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        if step == STEPS_B[-1]:
            probs = _last_probs(labels, ids, {*BROKEN, *BOTH_WRONG})
        save_npy(b.embedding_path(step), x)
        save_npy(b.probs_path(step), probs)
    log_steps = np.arange(1, STEPS_B[-1] + 1)
    pd.DataFrame(
        {"step": log_steps, "epoch": log_steps / 20, "loss": 2.0 * np.exp(-log_steps / 10) + 0.2, "learning_rate": 3e-3}
    ).to_csv(b.log_csv, index=False)
    return a, b
