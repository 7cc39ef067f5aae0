"""The run's evaluation set on disk: ``images/ID.png`` and ``eval.csv``, written once per run
and read back for every snapshot that is embedded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data import ImageSet, load_images, to_rgb
from .errors import DataError, RunDirError, first_line
from .models import versions
from .rundir import Run, atomic_path, write_json, write_text


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

    table = run.read_eval()
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


def eval_images_for(run: Run, *, dataset, images, eval_size, seed, quiet) -> list:
    """The evaluation images of ``run``, writing eval.csv + images/ + manifest first when
    the folder has none (checkpoints trained elsewhere) and ``dataset``/``images`` say what to embed."""
    if dataset is not None and images is not None:
        raise DataError("give either --dataset or --images, not both")
    source = {"dataset": dataset, "images": None if images is None else str(images), "eval_size": eval_size}
    if run.eval_csv.is_file():
        given = {k: v for k, v in source.items() if v is not None}
        if given:  # fine when it repeats what made the eval set (a resumed command line)
            recorded = run.read_manifest() if run.manifest.is_file() else {}
            if any(recorded.get(k) != v for k, v in given.items()):
                raise RunDirError(
                    f"{run.root} already has its evaluation set (eval.csv); run `spotreview embed {run.root}` "
                    "without --dataset/--images/--eval-size, or embed into another folder"
                )
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
    write_eval_set(run, imageset, quiet=quiet)
    if not run.manifest.is_file():
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
