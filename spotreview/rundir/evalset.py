"""An image set of a run on disk: ``images/ID.png`` and its listing ``eval.csv`` (``id,label,class_name,image``).

The evaluation set is ``eval.csv`` + ``images/``; the training set, when recorded, is
``train/train.csv`` + ``train/images/`` (the paths of a :class:`Run` view of that set). Written
once per run (by ``finetune``, the recorder or ``embed``), read back by every stage: this
module is the one that reads and writes both."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from spotreview.errors import RunDirError, first_line
from spotreview.rundir.atomic import atomic_path, sha256_bytes, write_text
from spotreview.rundir.run import EVAL, TRAIN, Run, read_csv_columns

# What a run derives from its evaluation set; a new evaluation set starts these afresh (and
# the training set's folder, which belongs to the same recording).
_DERIVED = (
    "eval.csv",
    "images",
    "embeddings",
    "analysis",
    "snapshots.csv",
    "log.csv",
    "review.parquet",
    "approval.json",
    "export.json",
    "exclusions.json",
    "training.json",
    TRAIN,
)


def write_eval_set(
    run: Run, *, ids: Sequence[str], labels, images: Sequence, class_names: Sequence[str], quiet: bool = False
) -> None:
    """``images/ID.png`` for every image of the set ``run`` views, then its listing
    (``eval.csv`` or ``train/train.csv``: id,label,class_name,image).

    ``labels``: ``(n,)`` int indices into ``class_names``; ``images``: PIL images, in ``ids`` order."""
    import pandas as pd
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=np.int64)
    run.images_dir.mkdir(parents=True, exist_ok=True)
    for image_id, image in tqdm(
        zip(ids, images),
        total=len(ids),
        desc=f"{run.image_set} images",
        unit="img",
        disable=quiet,
        leave=False,
    ):
        with atomic_path(run.image_path(image_id), durable=False) as tmp:  # one sync below
            to_rgb(image).save(tmp, format="PNG")
    folder = run.images_dir.relative_to(run.root).as_posix()  # paths relative to the run, whatever the set
    table = pd.DataFrame(
        {
            "id": list(ids),
            "label": labels,
            "class_name": [class_names[k] for k in labels],
            "image": [f"{folder}/{i}.png" for i in ids],
        }
    )
    os.sync()  # the images are on disk before the listing says the set is complete
    write_text(run.eval_csv, table.to_csv(index=False))


def read_eval(run: Run):
    """The evaluation set as a DataFrame: ``id`` (str), ``label`` (int), ``class_name``, ``image``.

    :func:`read_eval_columns` as a table, for the stages that work with one.
    """
    import pandas as pd

    columns = read_eval_columns(run)
    return pd.DataFrame({name: columns[name] for name in ("id", "label", "class_name", "image")})


def read_eval_columns(run: Run, *, paths: bool = True) -> dict[str, Any]:
    """The evaluation set as columns: ``id``, ``class_name``, ``image`` (lists of str),
    ``label`` ((n,) int64) and ``path`` (each image's path, checked to lie inside the run:
    :meth:`Run.inside_all`), read with the ``csv`` module so that no stage must import pandas.

    Checked: the columns exist, at least one row, ids unique and plain names (no path
    separators), labels whole numbers in ``0 .. len(class_names) - 1``, and every image
    path inside the run (:meth:`Run.inside`). A ``RunDirError`` names what is wrong.
    ``paths=False``, for stages that open no image (analyze): no ``path`` column and no
    path check, which costs an ``lstat`` per image.
    """
    import numpy as np

    path = run.eval_csv
    if not path.is_file():
        raise RunDirError(
            f"{path} is missing; create the run with `spotreview finetune`, or "
            f"give the images to embed with `spotreview embed {run.root} --dataset ...`"
        )
    try:
        columns = read_csv_columns(path)
    except ValueError as e:
        raise _bad(run, path, f"cannot be read as CSV ({first_line(e)})") from None
    missing = [c for c in ("id", "label", "image") if c not in columns]
    if missing:
        raise _bad(run, path, f"has no {', '.join(missing)} column (expected id,label,class_name,image)")
    ids, images = columns["id"], columns["image"]
    if not ids:
        raise _bad(run, path, "lists no images")
    if not all(all(column) for column in (ids, columns["label"], images)):
        raise _bad(run, path, "has empty id, label or image cells")
    labels = np.empty(len(ids), dtype=np.int64)
    for row, text in enumerate(columns["label"]):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value.is_integer():  # also NaN and infinities
            raise _bad(run, path, f"has labels that are not whole numbers (row {row + 2})")
        labels[row] = int(value)
    bad_ids = [i for i in ids if i in (".", "..") or "/" in i or "\\" in i or "\0" in i]
    if bad_ids:
        raise _bad(run, path, f"has ids that are not plain names: {bad_ids[0]!r}")
    if len(set(ids)) < len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        raise _bad(run, path, f"lists id {twice!r} twice")
    names = run.read_manifest().get("class_names") if run.manifest.is_file() else None
    high = len(names) - 1 if names else None
    wrong = (labels < 0) | (labels > (high if high is not None else np.inf))
    if wrong.any():
        expected = f"0 .. {high} (the class names in manifest.json)" if names else ">= 0"
        raise _bad(run, path, f"has label {int(labels[wrong][0])}, expected {expected}")
    class_names = columns.get("class_name") or [""] * len(ids)
    table = {"id": ids, "label": labels, "class_name": class_names, "image": images}
    if paths:
        table["path"] = run.inside_all(images, source=path)
    return table


def _bad(run: Run, path, what: str) -> RunDirError:
    return RunDirError(f"{path} {what}; {run.remake_hint()}")


def to_rgb(image):
    """``image`` as an RGB ``PIL.Image``, whatever its mode (16-bit and float images rescaled)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # convert("RGB") would clip these at 255; rescale their own range instead.
        a = np.asarray(image, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        image = Image.fromarray(a.astype(np.uint8))
    return image.convert("RGB")


def read_eval_images(run: Run) -> list:
    """The run's evaluation images (RGB PIL), in ``eval.csv`` row order."""
    from PIL import Image

    table = read_eval_columns(run)
    images = []
    for rel in table["image"]:
        path = run.root / rel
        if not path.is_file():
            raise RunDirError(f"{path} is missing; {run.eval_csv.name} lists it ({run.remake_hint()})")
        try:
            with Image.open(path) as im:
                im.load()
                images.append(to_rgb(im))
        except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated, broken chunks
            raise RunDirError(f"{path} is not a readable image ({first_line(e)}); {run.remake_hint()}") from None
    return images


def image_digest(image) -> str:
    """sha256 of an image's RGB pixels (and size): the same for a PIL image and its PNG file."""
    im = to_rgb(image)
    return sha256_bytes(repr(im.size).encode() + im.tobytes())


def check_eval_set(
    run: Run,
    *,
    count: int,
    ids: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    images: Sequence | None = None,
) -> None:
    """Raise a one-line ``RunDirError`` unless what is given is the run's ``eval.csv``: the same
    number of images, ids, labels (and class names) and image pixels, in the same order."""
    table = read_eval(run)
    listing = run.eval_csv.relative_to(run.root)
    other = f"{run.root} holds another {run.set_name} ({listing})"
    fix = "; give the run's own images, or start a new run (overwrite=True / --overwrite, or another folder)"
    if count != len(table):
        raise RunDirError(f"{other}: {count} images given, {listing} has {len(table)}{fix}")
    stored_ids = table["id"].tolist()

    def first_difference(given, stored, what):
        for i, (a, b) in enumerate(zip(given, stored)):
            if a != b:
                raise RunDirError(f"{other}: {what} of row {i} ({stored_ids[i]}) is {a!r}, {listing} has {b!r}{fix}")

    if ids is not None:
        first_difference([str(i) for i in ids], stored_ids, "the id")
    if labels is not None:
        first_difference([int(k) for k in labels], table["label"].astype(int).tolist(), "the label")
        if class_names is not None:
            first_difference([class_names[int(k)] for k in labels], table["class_name"].tolist(), "the class name")
    if images is not None:
        for i, (image, stored) in enumerate(zip(images, read_eval_images(run))):
            if image_digest(image) != image_digest(stored):
                raise RunDirError(f"{other}: image {i} ({stored_ids[i]}) differs from {table['image'][i]}{fix}")


def clear_eval_set(run: Run) -> None:
    """Remove what the run derived from the image set ``run`` views before a new one is
    written. For the evaluation set: ``eval.csv``, ``images/``, ``embeddings/``, analysis,
    review, approval, export record, logs and the training set; for the training set, its
    folder. Checkpoints and the manifest stay."""
    paths = [run.root / name for name in _DERIVED] if run.image_set == EVAL else [run.set_dir]
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
