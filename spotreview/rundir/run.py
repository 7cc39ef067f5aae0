"""The run-directory contract: every path a stage reads or writes, the manifest, and the snapshots.

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
      exclusions.json                  {id: reason} rows a reviewer excluded (rundir/exclusions.py)
      review.parquet                   the review table
      approval.json                    who/when approved, and the digest of what was approved
      export.json                      record of the last export (forced or not)
      animation.gif / .mp4 / .html
      train/                           the recorded training images, when there are: the same
        train.csv, images/, embeddings/, analysis/, exclusions.json, review.parquet, ...

A run holds one or two *image sets*: ``eval`` (the evaluation images, at the top) and
``train`` (a sample of the training images, in ``train/``). Each set has the same files;
``manifest.json``, the logs, ``processor/`` and the checkpoints are the run's, shared by both.
A :class:`Run` is a view of one set (``Run(path)`` the evaluation set, ``Run(path, "train")``
or ``run.for_set("train")`` the training set): a stage given a view works on that set.

A *snapshot* is a training step at which embeddings exist; step 0 is the model before
fine-tuning. Snapshots are ordered by step as a number (step 100 comes after step 20).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spotreview.defaults import IMAGE_SETS
from spotreview.errors import RunDirError, first_line
from spotreview.rundir.atomic import fs_error, save_npy, write_json

if TYPE_CHECKING:
    import numpy as np

_STEP_FILE = re.compile(r"^step-(\d+)\.npy$")

EVAL, TRAIN = IMAGE_SETS  # the evaluation set first: the default everywhere
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


class Run:
    """Paths of one run directory, as seen from one of its image sets. Creating a ``Run``
    touches nothing on disk.

    A ``Run`` is path-like, so ``Run(x)`` accepts a path or another ``Run``: every stage
    takes either. ``image_set``: ``"eval"`` or ``"train"``; None keeps the set of a ``Run``
    given as ``root`` (else ``"eval"``).
    """

    def __init__(self, root: str | os.PathLike, image_set: str | None = None):
        if image_set is None:
            image_set = root.image_set if isinstance(root, Run) else EVAL
        if image_set not in IMAGE_SETS:
            raise RunDirError(f"unknown image set {image_set!r}; expected one of {', '.join(IMAGE_SETS)}")
        self.root = Path(root)
        self.image_set = image_set

    def __repr__(self) -> str:
        where = "" if self.image_set == EVAL else f", {self.image_set!r}"
        return f"Run({str(self.root)!r}{where})"

    def for_set(self, image_set: str) -> Run:
        """The same run seen from another image set."""
        return Run(self.root, image_set)

    def image_sets(self) -> list[str]:
        """The image sets this run holds (``eval`` first), each once its listing exists."""
        return [name for name in IMAGE_SETS if self.for_set(name).eval_csv.is_file()]

    @property
    def set_dir(self) -> Path:
        """Where this image set's files live: the run itself for ``eval``, ``RUN/train`` for ``train``."""
        return self.root if self.image_set == EVAL else self.root / self.image_set

    @property
    def set_name(self) -> str:
        """The set in words: "evaluation set" or "training set"."""
        return "evaluation set" if self.image_set == EVAL else "training set"

    @property
    def label(self) -> str:
        """How messages and suggested commands name this view: the run's folder, followed by
        ``--set NAME`` when the set is not ``eval``."""
        return str(self.root) if self.image_set == EVAL else f"{self.root} --set {self.image_set}"

    def __fspath__(self) -> str:
        return str(self.root)

    # --- files of the run -------------------------------------------------------
    manifest = property(lambda self: self.root / "manifest.json")
    log_csv = property(lambda self: self.root / "log.csv")
    snapshots_csv = property(lambda self: self.root / "snapshots.csv")
    processor_dir = property(lambda self: self.root / "processor")

    # --- files of this image set ------------------------------------------------
    # eval.csv for the evaluation set, train/train.csv for the training set
    eval_csv = property(lambda self: self.set_dir / f"{self.image_set}.csv")
    images_dir = property(lambda self: self.set_dir / "images")
    embeddings_dir = property(lambda self: self.set_dir / "embeddings")
    analysis_dir = property(lambda self: self.set_dir / "analysis")
    exclusions = property(lambda self: self.set_dir / "exclusions.json")
    review_table = property(lambda self: self.set_dir / "review.parquet")
    approval = property(lambda self: self.set_dir / "approval.json")
    export_record = property(lambda self: self.set_dir / "export.json")

    def image_path(self, image_id: str) -> Path:
        """``images/ID.png``; a ``RunDirError`` if that leaves the run (an id with a path in
        it, or a symlink pointing outside)."""
        path = self.images_dir / f"{image_id}.png"
        if path.parent != self.images_dir or path.is_symlink() or self.images_dir.is_symlink():
            self.inside(path.relative_to(self.root), source=f"image id {image_id!r}")
        return path

    def embedding_path(self, step: int) -> Path:
        return self.embeddings_dir / f"step-{step}.npy"

    def probs_path(self, step: int) -> Path:
        return self.embeddings_dir / f"step-{step}.probs.npy"

    def checkpoint_path(self, step: int) -> Path:
        return self.root / f"checkpoint-{step}"

    # --- discovery -------------------------------------------------------------
    def require(self) -> Run:
        """Raise a one-line error unless the run directory (and this image set) exists."""
        if not self.root.is_dir():
            raise RunDirError(
                f"run directory {self.root} does not exist; create one with `spotreview finetune --out {self.root}`"
            )
        if self.image_set != EVAL and not self.set_dir.is_dir():
            raise RunDirError(
                f"{self.root} has no {self.image_set} set ({self.set_dir} is missing); record training images "
                f"with `spotreview finetune --record-train N` or EmbeddingRecorder(train_images=...)"
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
        if not steps and self.checkpoints():
            raise RunDirError(f"{self.root} has no embeddings; run `spotreview embed {self.root}` first")
        if not steps:  # `embed` needs checkpoints: it would only answer "Nothing to embed"
            again = " --overwrite" if self.manifest.is_file() else ""
            raise RunDirError(
                f"{self.root} has no embeddings and no checkpoint-STEP folders to embed; "
                f"create the run with `spotreview finetune --out {self.root}{again}`"
            )
        return steps

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every ``checkpoint-STEP`` directory, ascending by number."""
        if not self.root.is_dir():
            return []
        found = ((_CHECKPOINT_DIR.match(p.name), p) for p in self.root.iterdir() if p.is_dir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    # --- advice ----------------------------------------------------------------
    def remake_hint(self) -> str:
        """What re-creates the run's own files (manifest, eval.csv, images, log)."""
        return (
            f"re-create the run with `spotreview finetune --out {self.root} --overwrite` "
            "(its options are in manifest.json)"
        )

    def reembed_hint(self, path: str | os.PathLike) -> str:
        """What re-creates an embedding file: ``embed`` where checkpoints exist, else the run."""
        if self.checkpoints():
            return f"delete {path} and run `spotreview embed {self.root}`"
        return f"{self.root} keeps no checkpoints to embed again, so {self.remake_hint()}"

    # --- confinement and locking ------------------------------------------------
    def inside(self, rel: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
        """The absolute path of ``rel`` (relative to the run), refused with a ``RunDirError``
        if it leaves the run: an absolute path, ``..`` or a symlink pointing outside."""
        root = self.root.resolve()
        full = (root / rel).resolve()
        if Path(rel).is_absolute() or not full.is_relative_to(root):
            where = f"{source} names" if source else "refusing"
            raise RunDirError(
                f"{where} {str(rel)!r}, which is outside the run {self.root} (absolute path, `..` or a "
                f"symlink out); every file a run uses must be inside it: {self.remake_hint()}"
            )
        return full

    def inside_all(self, rels, *, source: str | os.PathLike | None = None) -> list[str]:
        """:meth:`inside` for many paths (as strings), at one ``lstat`` each instead of a
        ``realpath``: each distinct parent folder is resolved once, and a file only if it is a
        symlink. String operations, not ``Path`` objects: cheap enough for every row of a large eval set."""
        parents: dict[str, str] = {}
        out = []
        for rel in map(str, rels):
            if os.path.isabs(rel) or ".." in rel.replace(os.sep, "/").split("/"):
                self.inside(rel, source=source)  # raises, naming it
            head, name = os.path.split(rel)
            parent = parents.get(head)
            if parent is None:
                parent = parents[head] = str(self.inside(head or ".", source=source))
            full = os.path.join(parent, name)
            out.append(str(self.inside(rel, source=source)) if os.path.islink(full) else full)
        return out

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run (``RUN/.lock``, ``flock``) for a read-modify-write."""
        import fcntl

        path = self.root / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise fs_error(e, path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- validated readers -----------------------------------------------------
    def _bad(self, path: Path, what: str, fix: str | None = None) -> RunDirError:
        return RunDirError(f"{path} {what}; {fix or self.remake_hint()}")

    def _read_json(self, path: Path, fix: str | None = None) -> dict:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise self._bad(path, f"is not valid JSON ({first_line(e)})", fix) from None
        if not isinstance(obj, dict):
            raise self._bad(path, f"holds a JSON {type(obj).__name__}, expected an object", fix)
        return obj

    def read_manifest(self) -> dict:
        if not self.manifest.is_file():
            raise RunDirError(
                f"{self.manifest} is missing; this is not a spotreview run "
                f"(create one with `spotreview finetune --out {self.root}`)"
            )
        manifest = self._read_json(self.manifest)
        names = manifest.get("class_names")
        if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise self._bad(self.manifest, "has class_names that are not a non-empty list of strings")
        return manifest

    def update_manifest(self, **changes: Any) -> dict:
        """Set top-level keys of ``manifest.json`` under the run lock (no lost updates)."""
        with self.lock():
            manifest = self.read_manifest()
            manifest.update(changes)
            write_json(self.manifest, manifest)
        return manifest

    def load_array(self, path: Path, *, mmap: bool = False, fix: str | None = None):
        """A numeric ``.npy`` array (no pickles), or a ``RunDirError`` naming the file:
        unreadable, truncated, empty, or not numbers. ``mmap`` reads only the header."""
        import numpy as np

        fix = fix or self.reembed_hint(path)
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            why = "is empty" if path.is_file() and path.stat().st_size == 0 else f"is unreadable ({first_line(e)})"
            raise self._bad(path, why, fix) from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
            raise self._bad(
                path, f"holds {getattr(array, 'dtype', type(array).__name__)} values, expected numbers", fix
            )
        return array


def user_cache_dir() -> Path:
    """spotreview's folder in the user's cache: ``$XDG_CACHE_HOME/spotreview`` (``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spotreview"


def read_csv_columns(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{column: [cell, ...]}`` of a CSV file with a header line; blank lines skipped, short
    rows padded with empty cells. ``ValueError`` (one line) when it is not such a file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            rows = [(reader.line_num, row) for row in reader if row]
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ValueError(first_line(e)) from None
    if not rows:
        raise ValueError("no header line")
    header = rows[0][1]
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise ValueError(f"line {line} has {len(row)} fields, the header {len(header)}")
    return {name: [row[i] if i < len(row) else "" for _, row in rows[1:]] for i, name in enumerate(header)}


def write_snapshot(run: Run, step: int, embeddings: np.ndarray, probs: np.ndarray | None) -> None:
    """Write one snapshot atomically: probabilities first, the embedding file (which marks
    the snapshot as done) last, so an interrupted write is simply redone on resume."""
    if probs is not None:
        save_npy(run.probs_path(step), probs)
    save_npy(run.embedding_path(step), embeddings)
