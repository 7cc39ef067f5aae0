"""The run's evaluation set on disk: ``images/ID.png`` and ``eval.csv``, written once per run
and read back for every snapshot that is embedded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import ImageSet, load_images, to_rgb
from .errors import DataError, RunDirError, first_line
from .models import versions
from .rundir import Run, atomic_path, sha256_bytes, write_json, write_text

# What a run derives from its evaluation set; a new evaluation set starts these afresh.
_DERIVED = ("eval.csv", "images", "embeddings", "analysis", "snapshots.csv", "log.csv", "review.parquet",
            "approval.json", "export.json", "exclusions.json")


def write_eval_set(run: Run, images: ImageSet, *, quiet: bool = False) -> None:
    """``images/ID.png`` for every evaluation image, then ``eval.csv`` (id,label,class_name,image)."""
    import pandas as pd
    from tqdm.auto import tqdm

    run.images_dir.mkdir(parents=True, exist_ok=True)
    for image_id, image in tqdm(
        zip(images.eval_ids, images.eval_images), total=len(images.eval_ids), desc="eval images",
        unit="img", disable=quiet, leave=False,
    ):
        with atomic_path(run.image_path(image_id), durable=False) as tmp:  # one sync below
            to_rgb(image).save(tmp, format="PNG")
    table = pd.DataFrame(
        {
            "id": images.eval_ids,
            "label": images.eval_labels.astype(np.int64),
            "class_name": [images.class_names[k] for k in images.eval_labels],
            "image": [f"images/{i}.png" for i in images.eval_ids],
        }
    )
    os.sync()  # the images are on disk before eval.csv says the eval set is complete
    write_text(run.eval_csv, table.to_csv(index=False))


def read_eval_images(run: Run) -> list:
    """The run's evaluation images (RGB PIL), in ``eval.csv`` row order."""
    from PIL import Image

    table = run.read_eval_columns()
    images = []
    for rel in table["image"]:
        path = run.root / rel
        if not path.is_file():
            raise RunDirError(f"{path} is missing; eval.csv lists it (re-create the run with `spotreview finetune`)")
        try:
            with Image.open(path) as im:
                im.load()
                images.append(to_rgb(im))
        except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated, broken chunks
            raise RunDirError(f"{path} is not a readable image ({first_line(e)}); {run.remake_hint()}") from None
    return images


def eval_images_for(run: Run, *, dataset, images, eval_size, seed, quiet, overwrite: bool = False,
                    write: bool = True) -> list:
    """The evaluation images of ``run``, writing eval.csv + images/ + manifest first when
    the folder has none (checkpoints trained elsewhere) and ``dataset``/``images`` say what to embed.

    When the run has an eval set and ``dataset``/``images`` are given too, they must be the
    same images, ids and labels (checked, one-line error naming the first difference) unless
    ``overwrite``: then the run's eval set and everything derived from it start afresh.
    ``write=False`` (processes other than 0 of a distributed job) only reads.
    """
    if dataset is not None and images is not None:
        raise DataError("give either --dataset or --images, not both")
    source = {"dataset": dataset, "images": None if images is None else str(images), "eval_size": eval_size}
    if run.eval_csv.is_file() and dataset is None and images is None:
        if eval_size is not None:
            check_eval_set(run, count=eval_size)
        return read_eval_images(run)
    if dataset is None and images is None:
        raise RunDirError(
            f"{run.root} has no eval.csv; give the images to embed: "
            f"`spotreview embed {run.root} --dataset NAME` or `--images DIR`"
        )
    if images is not None:
        if not Path(images).is_dir():
            raise DataError(
                f"images folder {images} does not exist; expected a folder of images (one sub-folder per class)"
            )
        imageset = load_images(str(images), eval_size=eval_size, seed=seed, all_eval=True, quiet=quiet)
    else:
        imageset = load_images(dataset, eval_size=eval_size, seed=seed, quiet=quiet)
    if not write:
        return list(imageset.eval_images)
    if run.eval_csv.is_file():
        if not overwrite:
            check_eval_set(run, count=len(imageset.eval_ids), ids=imageset.eval_ids, labels=imageset.eval_labels,
                           class_names=imageset.class_names, images=imageset.eval_images)
            return read_eval_images(run)
        clear_eval_set(run)
    write_eval_set(run, imageset, quiet=quiet)
    if overwrite or not run.manifest.is_file():
        write_json(
            run.manifest,
            {
                "model": f"checkpoints in {run.root}",
                **source,
                "class_names": imageset.class_names,
                "eval_split": imageset.eval_split,
                "num_images": len(imageset.eval_ids),
                "seed": seed,
                "versions": versions(),
                "created_by": "spotreview embed",
            },
        )
    return list(imageset.eval_images)


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
    table = run.read_eval()
    other = (f"{run.root} holds another evaluation set (eval.csv)")
    fix = "; give the run's own images, or start a new run (overwrite=True / --overwrite, or another folder)"
    if count != len(table):
        raise RunDirError(f"{other}: {count} images given, eval.csv has {len(table)}{fix}")
    stored_ids = table["id"].tolist()

    def first_difference(given, stored, what):
        for i, (a, b) in enumerate(zip(given, stored)):
            if a != b:
                raise RunDirError(f"{other}: {what} of row {i} ({stored_ids[i]}) is {a!r}, eval.csv has {b!r}{fix}")

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
    """Remove what the run derived from its evaluation set (``eval.csv``, ``images/``,
    ``embeddings/``, analysis, review, approval, export record, logs) before a new one is
    written; checkpoints and the manifest stay."""
    for name in _DERIVED:
        path = run.root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
