"""The run-directory contract: every path a stage reads or writes, and atomic writes.

::

    runs/NAME/
      manifest.json                    model, dataset, class names, seed, versions, parameters
      eval.csv                         id,label,class_name,image  (image: path relative to the run)
      log.csv                          step,epoch,loss,learning_rate,...  (one row per Trainer log)
      snapshots.csv                    step,epoch of every recorded snapshot
      images/ID.png                    evaluation images as files, for Spotlight and the leaderboard
      processor/                       the image processor used for every snapshot
      checkpoint-STEP/                 HF checkpoints, when kept
      embeddings/step-STEP.npy         (n_images, dim) float32, one per snapshot
      embeddings/step-STEP.probs.npy   (n_images, n_classes) float32 class probabilities
      analysis/step-STEP.npz           per-snapshot outlier scores and raw 2-D PCA (see analysis.py)
      analysis/aligned.npz             aligned 2-D coordinates of every snapshot in one frame
      analysis/summary.json            per-snapshot metrics (accuracy, kNN accuracy, disparity)
      exclusions.json                  {id: reason} rows a reviewer excluded
      review.parquet                   the review table
      approval.json                    who/when approved, and the digest of what was approved
      export.json                      record of the last export (forced or not)
      animation.gif / .mp4 / .html

A *snapshot* is a training step at which embeddings exist; step 0 is the model before
fine-tuning. Snapshots are ordered by step as a number (step 100 comes after step 20).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

from .errors import RunDirError

_STEP_FILE = re.compile(r"^step-(\d+)\.npy$")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the suffix (``np.save`` would otherwise append ``.npy``), so
    an interrupted write never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        np.save(tmp, array)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Run:
    """Paths of one run directory. Creating a ``Run`` touches nothing on disk.

    A ``Run`` is path-like, so ``Run(x)`` accepts a path or another ``Run``: every stage
    takes either.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    # --- files -----------------------------------------------------------------
    manifest = property(lambda self: self.root / "manifest.json")
    eval_csv = property(lambda self: self.root / "eval.csv")
    log_csv = property(lambda self: self.root / "log.csv")
    snapshots_csv = property(lambda self: self.root / "snapshots.csv")
    images_dir = property(lambda self: self.root / "images")
    processor_dir = property(lambda self: self.root / "processor")
    embeddings_dir = property(lambda self: self.root / "embeddings")
    analysis_dir = property(lambda self: self.root / "analysis")
    exclusions = property(lambda self: self.root / "exclusions.json")
    review_table = property(lambda self: self.root / "review.parquet")
    approval = property(lambda self: self.root / "approval.json")
    export_record = property(lambda self: self.root / "export.json")

    def image_path(self, image_id: str) -> Path:
        return self.images_dir / f"{image_id}.png"

    def embedding_path(self, step: int) -> Path:
        return self.embeddings_dir / f"step-{step}.npy"

    def probs_path(self, step: int) -> Path:
        return self.embeddings_dir / f"step-{step}.probs.npy"

    def checkpoint_path(self, step: int) -> Path:
        return self.root / f"checkpoint-{step}"

    # --- discovery -------------------------------------------------------------
    def require(self) -> "Run":
        """Raise a one-line error unless the run directory exists."""
        if not self.root.is_dir():
            raise RunDirError(
                f"run directory {self.root} does not exist; "
                f"create one with `spotreview finetune --out {self.root}`"
            )
        return self

    def snapshots(self) -> list[int]:
        """Steps that have embeddings, ascending by number."""
        if not self.embeddings_dir.is_dir():
            return []
        steps = (_STEP_FILE.match(p.name) for p in self.embeddings_dir.iterdir())
        return sorted(int(m.group(1)) for m in steps if m)

    def require_snapshots(self) -> list[int]:
        steps = self.require().snapshots()
        if not steps:
            raise RunDirError(
                f"{self.root} has no embeddings; run `spotreview embed {self.root}` first"
            )
        return steps

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every ``checkpoint-STEP`` directory, ascending by number."""
        if not self.root.is_dir():
            return []
        found = ((_CHECKPOINT_DIR.match(p.name), p) for p in self.root.iterdir() if p.is_dir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    # --- small readers ---------------------------------------------------------
    def read_manifest(self) -> dict:
        if not self.manifest.is_file():
            raise RunDirError(
                f"{self.manifest} is missing; this is not a spotreview run "
                f"(create one with `spotreview finetune --out {self.root}`)"
            )
        return json.loads(self.manifest.read_text(encoding="utf-8"))

    def read_eval(self):
        """The evaluation set as a DataFrame: ``id`` (str), ``label`` (int), ``class_name``, ``image``."""
        import pandas as pd

        if not self.eval_csv.is_file():
            raise RunDirError(
                f"{self.eval_csv} is missing; create the run with `spotreview finetune`, or "
                f"give the images to embed with `spotreview embed {self.root} --dataset ...`"
            )
        return pd.read_csv(self.eval_csv, dtype={"id": str, "class_name": str, "image": str})

    def read_exclusions(self) -> dict[str, str]:
        if not self.exclusions.is_file():
            return {}
        return json.loads(self.exclusions.read_text(encoding="utf-8"))
