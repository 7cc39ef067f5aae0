"""``embed``: the evaluation images' embeddings at every checkpoint of a run, after training.

For every ``checkpoint-STEP`` of a run (or of any folder of Hugging Face checkpoints) not
embedded yet, :func:`embed` loads the model and runs :func:`spotreview.embedding.forward.forward`
over the run's evaluation images; it resumes (snapshots already embedded are skipped). A folder
without an evaluation set gets one first (:func:`eval_images_for`). Device, precision and model
loading live in :mod:`spotreview.embedding.models`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from spotreview.defaults import DEVICE, EMBED_BATCH_SIZE, PRECISION, SEED, Device, Precision
from spotreview.embedding.forward import compiled, forward, prepare_for_inference, preprocess
from spotreview.embedding.models import (
    label_order,
    load_base_model,
    load_checkpoint,
    load_processor,
    precision_used,
    resolve_device,
    transformers_bars,
    versions,
)
from spotreview.embedding.sources import load_images
from spotreview.errors import DataError, RunDirError, SpotreviewError, first_line
from spotreview.rundir.atomic import write_json
from spotreview.rundir.evalset import check_eval_set, clear_eval_set, read_eval_images, write_eval_set
from spotreview.rundir.run import EVAL, TRAIN, Run, write_snapshot
from spotreview.rundir.traininglog import log_from_trainer_state, record_snapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embedded:
    """What :func:`embed` did (also under ``embed`` in the run's ``manifest.json``)."""

    run: Run
    steps: list[int]  # snapshots embedded by this call, ascending (this process's share under torchrun)
    snapshots: list[int]  # every step of the run with embeddings now, ascending
    device: str  # "cpu" or "cuda"
    precision: str  # what ran: "bf16", "fp32" or "int8" (what precision "auto" chose)
    batch_size: int
    compiled: bool  # the forward passes ran through torch.compile
    seconds: float  # spent embedding (0 when nothing was left to embed)


def embed(
    run,
    *,
    checkpoints: Sequence[int] | None = None,
    dataset: str | None = None,
    images: str | Path | None = None,
    eval_size: int | None = None,
    seed: int = SEED,
    base_model: str | Path | None = None,
    processor: str | Path | None = None,
    overwrite: bool = False,
    device: Device = DEVICE,
    precision: Precision = PRECISION,
    batch_size: int = EMBED_BATCH_SIZE,
    torch_compile: bool = False,
    quiet: bool = False,
) -> Embedded:
    """Embed the evaluation images at every ``checkpoint-STEP`` of ``run`` not embedded yet.

    ``run``: a run directory, or any folder of Hugging Face checkpoints (``checkpoint-STEP/``);
    in a folder without ``eval.csv``, ``dataset`` (a name, save_to_disk dir or image folder:
    its evaluation split, i.e. ``test``/``validation``, or a seeded split of ``train``) or
    ``images`` (a folder: all of its images) says what to embed, cut to ``eval_size``
    (seeded, stratified). A run holds one evaluation set: given again, it must be the same
    (else a one-line error) unless ``overwrite`` starts it afresh. ``checkpoints``: only these
    steps. ``base_model`` (a directory or hub id): the model before fine-tuning, embedded as
    step 0. ``processor`` (a directory or hub id): the image processor, when neither the run
    nor the checkpoints have one. ``torch_compile``: run the models through
    ``torch.compile`` (off by default: its compile time does not pay, see benchmarks/RESULTS.md);
    where compiling fails (no C++ compiler, ...) a warning says so and the eager model is used.
    Writes ``embeddings/step-STEP.npy`` ``(n, dim)`` float32 and, for classifiers,
    ``embeddings/step-STEP.probs.npy`` ``(n, n_classes)`` float32 with the classes in the
    run's order (matched by name through the checkpoint's ``id2label``); ``snapshots.csv``;
    and ``log.csv`` from the newest ``trainer_state.json`` when the run has none.
    Returns an :class:`Embedded`: the steps newly embedded (snapshots already embedded are
    skipped), every snapshot, and how.
    Under ``torchrun`` the processes share the checkpoints (process k embeds every k-th).
    """
    run = Run(run, EVAL).require()  # every image set of the run, whichever view was given
    if batch_size < 1:
        raise SpotreviewError(f"batch size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    used = precision_used(precision, dev)
    found = _checkpoints_to_embed(run, checkpoints, base_model)
    how = {"device": dev.type, "precision": used, "batch_size": batch_size}
    if not found:  # recorded during training; nothing left to compute
        return Embedded(run, [], run.snapshots(), compiled=False, seconds=0.0, **how)
    had_eval_set = run.eval_csv.is_file()
    try:
        done, use_compile, seconds = _embed_checkpoints(
            run,
            found,
            dataset=dataset,
            images=images,
            eval_size=eval_size,
            seed=seed,
            base_model=base_model,
            processor=processor,
            overwrite=overwrite,
            dev=dev,
            used=used,
            batch_size=batch_size,
            torch_compile=torch_compile,
            quiet=quiet,
        )
    except BaseException:
        if not had_eval_set and not run.snapshots() and _world()[0] == 0:  # nothing left to block a retry
            clear_eval_set(run)
            if run.manifest.is_file() and run.read_manifest().get("created_by") == "spotreview embed":
                run.manifest.unlink()
        raise
    return Embedded(run, done, run.snapshots(), compiled=use_compile, seconds=seconds, **how)


def _checkpoints_to_embed(run: Run, checkpoints: Sequence[int] | None, base_model) -> list[tuple[int, Path | None]]:
    """``(step, checkpoint directory)`` of every snapshot :func:`embed` may compute, ascending
    (``None``: ``base_model`` as step 0); empty when the run's snapshots were recorded during
    training. A ``RunDirError`` when there is nothing to embed and nothing embedded."""
    found = run.checkpoints()
    if checkpoints is not None:
        wanted = {int(s) for s in checkpoints}
        missing = sorted(wanted - {s for s, _ in found})
        if missing:
            raise RunDirError(f"{run.root} has no checkpoint-{missing[0]}; it has steps {[s for s, _ in found]}")
        found = [(s, p) for s, p in found if s in wanted]
    if base_model is not None and not any(s == 0 for s, _ in found):
        found = [(0, None)] + found  # None: load base_model
    if found or run.snapshots():
        return found
    if not any(run.root.iterdir()):
        raise RunDirError(
            f"run directory {run.root} is empty; create a run with `spotreview finetune --out {run.root}` "
            "or put checkpoint-STEP directories in it"
        )
    raise RunDirError(
        f"{run.root} has no checkpoint-STEP directories and no embeddings; expected a run made by "
        "`spotreview finetune` or a folder of Trainer checkpoints"
    )


def _embed_checkpoints(
    run,
    found,
    *,
    dataset,
    images,
    eval_size,
    seed,
    base_model,
    processor,
    overwrite,
    dev,
    used,
    batch_size,
    torch_compile,
    quiet,
) -> tuple[list[int], bool, float]:
    """:func:`embed` once the checkpoints to embed are known: the evaluation set, the
    snapshots' epochs and log.csv, then the forward passes. Returns ``(steps embedded,
    compiled, seconds)``."""
    import json

    autocast = torch.bfloat16 if used == "bf16" else None
    rank, world = _world()
    eval_images = eval_images_for(
        run,
        dataset=dataset,
        images=images,
        eval_size=eval_size,
        seed=seed,
        quiet=quiet,
        overwrite=overwrite,
        write=rank == 0,
    )
    if rank == 0:
        log_from_trainer_state(run)
        for step, path in found:  # the epoch of every snapshot, from the Trainer's state where saved
            state = None if path is None else path / "trainer_state.json"
            epoch = json.loads(state.read_text()).get("epoch") if state is not None and state.is_file() else None
            record_snapshot(run, step, 0.0 if step == 0 else epoch)
    # A recorded training set is embedded too, before the evaluation set, whose file marks the
    # snapshot as done.
    train = run.for_set(TRAIN)
    views = [train, run] if train.eval_csv.is_file() else [run]
    # under torchrun every process takes its share of the checkpoints, split before looking at
    # what is embedded already (another process may be writing), so the shares never overlap
    todo = [(s, p) for s, p in found[rank::world] if not all(v.embedding_path(s).is_file() for v in views)]
    if not todo:
        return [], False, 0.0
    first_checkpoint = next((p for _, p in todo if p is not None), found[-1][1])
    proc = load_processor(run, first_checkpoint, processor)
    # Preprocessed once, on the device (each set is reused for every snapshot).
    pixels = {
        view.image_set: preprocess(
            eval_images if view.image_set == run.image_set else read_eval_images(view),
            proc,
            dtype=autocast or torch.float32,
            device=dev,
            quiet=quiet,
        )
        for view in views
    }
    started = time.perf_counter()
    done, use_compile = _embed_each(
        views,
        todo,
        pixels,
        base_model=base_model,
        dev=dev,
        autocast=autocast,
        int8=used == "int8",
        batch_size=batch_size,
        torch_compile=torch_compile,
        quiet=quiet,
    )
    seconds = round(time.perf_counter() - started, 2)
    if run.manifest.is_file() and world == 1:
        run.update_manifest(
            embed={
                "device": dev.type,
                "precision": used,
                "batch_size": batch_size,
                "compiled": use_compile,
                "seconds": seconds,
                "steps": done,
                **({"base_model": str(base_model)} if base_model is not None else {}),
            }
        )
    return done, use_compile, seconds


def _embed_each(
    views: list[Run],
    todo,
    pixels,
    *,
    base_model,
    dev,
    autocast,
    int8: bool,
    batch_size: int,
    torch_compile: bool,
    quiet: bool,
) -> tuple[list[int], bool]:
    """Load every checkpoint of ``todo`` in turn and write its snapshot of every image set
    (``views``, in writing order) from the preprocessed ``pixels`` (by set name); returns
    ``(steps written, whether torch.compile was used)``."""
    from tqdm.auto import tqdm

    run = views[-1]
    class_names = run.read_manifest().get("class_names") if run.manifest.is_file() else None
    use_compile = bool(torch_compile)
    done = []
    for step, path in tqdm(todo, desc="snapshots", unit="ckpt", disable=quiet):
        with transformers_bars(False):  # one bar per snapshot is enough
            # bf16 weights, not autocast: layer norms, GELU and softmax run in bf16 too (autocast
            # keeps them in float32 and converts around them); within 1e-2 cosine (tested).
            model = load_checkpoint(path) if path is not None else load_base_model(base_model)
            model = model.to(dev, dtype=autocast or torch.float32)
        prepare_for_inference(model, compiling=use_compile, int8=int8)
        for view in views:
            if view.embedding_path(step).is_file():
                continue
            emb, probs, use_compile = _forward_maybe_compiled(
                model,
                pixels[view.image_set],
                use_compile,
                first=not done,
                device=dev,
                batch_size=batch_size,
                quiet=quiet,
                desc=f"step {step}" if len(views) == 1 else f"step {step} {view.image_set}",
            )
            if probs is not None and class_names:
                order = label_order(model.config, class_names, str(path or base_model))
                probs = probs if order is None else probs[:, order]
            write_snapshot(view, step, emb, probs)
        done.append(step)
        del model
    return done, use_compile


def _forward_maybe_compiled(model, pixels, use_compile: bool, *, first: bool, **kwargs):
    """:func:`forward` of ``model``, compiled if ``use_compile``; if compiling fails on the
    first snapshot, a warning and the eager model from then on. Returns ``(emb, probs, use_compile)``."""
    if not use_compile:
        return (*forward(model, pixels, **kwargs), False)
    try:
        return (*forward(compiled(model), pixels, fixed_batch=True, **kwargs), True)
    except Exception as e:  # noqa: BLE001 - inductor raises many kinds (no compiler, unsupported op, ...)
        if not first:
            raise
        logger.warning("torch.compile failed (%s); embedding without it", first_line(e))
        return (*forward(model, pixels, **kwargs), False)


def _world() -> tuple[int, int]:
    """``(rank, world size)`` from the launcher's environment (torchrun / accelerate launch)."""
    import os

    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def eval_images_for(
    run: Run, *, dataset, images, eval_size, seed, quiet, overwrite: bool = False, write: bool = True
) -> list:
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
            check_eval_set(
                run,
                count=len(imageset.eval_ids),
                ids=imageset.eval_ids,
                labels=imageset.eval_labels,
                class_names=imageset.class_names,
                images=imageset.eval_images,
            )
            return read_eval_images(run)
        clear_eval_set(run)
    write_eval_set(
        run,
        ids=imageset.eval_ids,
        labels=imageset.eval_labels,
        images=imageset.eval_images,
        class_names=imageset.class_names,
        quiet=quiet,
    )
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
