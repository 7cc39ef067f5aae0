"""Fine-tuning with the Hugging Face ``Trainer``, recording embeddings at every save.

:func:`finetune` builds (or loads) an image classifier (:mod:`spotreview.models`), writes
the run directory's ``manifest.json``, ``eval.csv``, ``images/`` and ``processor/``, then
trains with :class:`spotreview.recorder.EmbeddingRecorder` (``embeddings/step-STEP.npy`` at
step 0 and every save, ``snapshots.csv``, ``log.csv``). While it trains, the Trainer keeps one
rolling checkpoint so that re-running the same command after a crash resumes from it; the
checkpoints are deleted when training ends unless ``keep_checkpoints=True`` (which also saves
``checkpoint-0``, the model before fine-tuning). Returns a :class:`Finetuned`.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotreview.defaults import (
    DATASET,
    DEVICE,
    EPOCHS,
    OOD_K,
    RUN_DIR,
    SAVE_STEPS,
    SEED,
    TRAIN_BATCH_SIZE,
    Device,
)
from spotreview.embedding.models import (
    PRETRAINED_LR,
    SMALL_VIT,
    SMALL_VIT_LR,
    precision_used,
    pretrained,
    resolve_device,
    small_vit,
    transformers_bars,
    versions,
)
from spotreview.embedding.sources import load_images
from spotreview.errors import RunDirError, SpotreviewError
from spotreview.rundir.atomic import write_json
from spotreview.rundir.evalset import read_eval_columns
from spotreview.rundir.run import TRAIN, Run
from spotreview.training.trainer import build_trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finetuned:
    """What :func:`finetune` did (also in the run's ``manifest.json``)."""

    run: Run
    model: str  # what was fine-tuned: a hub id, a directory or the built-in small ViT
    dataset: str
    snapshots: list[int]  # steps with embeddings, ascending
    num_images: int  # evaluation images embedded per snapshot
    num_train_recorded: int  # training images embedded per snapshot (the training set; 0: none)
    seconds: float  # training time
    record_seconds: float  # of which recording snapshots (every image set)
    accuracy: dict[int, float | None]  # eval accuracy at the first and the last snapshot
    checkpoints: int  # checkpoint-STEP directories kept


def finetune(
    out: str | Path = RUN_DIR,
    *,
    model: str | None = None,
    dataset: str = DATASET,
    eval_size: int | None = None,
    save_steps: int = SAVE_STEPS,
    epochs: float = EPOCHS,
    batch_size: int = TRAIN_BATCH_SIZE,
    learning_rate: float | None = None,
    seed: int = SEED,
    keep_checkpoints: bool = False,
    record_train: int | str | None = None,
    device: Device = DEVICE,
    overwrite: bool = False,
    quiet: bool = False,
) -> Finetuned:
    """Fine-tune an image classifier on ``dataset`` and record its embeddings into run ``out``.

    ``model``: None for the built-in small ViT (random init, 32x32 inputs, offline), a hub id
    or a local ``save_pretrained`` directory (a new classification head is attached).
    ``learning_rate``: None picks 1e-3 for the built-in ViT and 5e-5 for pretrained models.
    A snapshot is recorded at step 0 and every ``save_steps`` optimizer steps (and the last
    step). ``record_train``: also record a seeded, stratified sample of this many training
    images (``"all"``: every one) at every snapshot, as the run's training set (``train/``);
    each snapshot then costs one more forward pass over them. ``out`` must not hold a run
    already unless ``overwrite`` (then it is replaced once the data and model have loaded),
    or an unfinished run made with the same settings: then training resumes from its last
    checkpoint. A non-empty folder that is not a run is never touched. Returns a
    :class:`Finetuned` record (its ``run`` is the :class:`Run`).
    """
    from spotreview.training.recorder import EmbeddingRecorder

    _check_settings(save_steps=save_steps, batch_size=batch_size, epochs=epochs, eval_size=eval_size)
    record_train = _check_record_train(record_train)
    command = {
        "model": model,
        "dataset": dataset,
        "eval_size": eval_size,
        "save_steps": save_steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "keep_checkpoints": keep_checkpoints,
        "record_train": record_train,
    }
    run = Run(out)
    resume = _check_out(run, overwrite, command)
    dev = resolve_device(device)
    images, net, processor, lr = _load(dataset, model, eval_size, seed, learning_rate, quiet)
    # before an --overwrite removes the old run: a bad sample size must leave it as it is
    train = images.train_sample(None if record_train == "all" else record_train, seed) if record_train else []

    if overwrite and run.root.exists():
        shutil.rmtree(run.root)
    run.root.mkdir(parents=True, exist_ok=True)
    checkpoint = _last_checkpoint(run) if resume else None
    if resume:
        manifest = {**run.read_manifest(), "finished": False}
        if not quiet:
            why = checkpoint.name if checkpoint else "the start (no checkpoint was saved)"
            logger.info("resuming the unfinished run in %s from %s", run.root, why)
    else:
        parameters = _parameters(command, lr, dev, len(images.train_labels))
        manifest = _manifest(command, net, images, parameters)
        _start_run(run, manifest, net, processor, keep_checkpoints, quiet)

    recorder = EmbeddingRecorder(
        run,
        images=images.eval_images,
        processor=processor,
        labels=images.eval_labels,
        ids=images.eval_ids,
        class_names=images.class_names,
        **(
            {
                "train_images": [images.train_images[int(i)] for i in train],
                "train_labels": images.train_labels[train],
                "train_ids": [images.train_ids[int(i)] for i in train],
            }
            if len(train)
            else {}
        ),
    )
    trainer = build_trainer(run, net, processor, images, recorder, command, lr=lr, dev=dev, quiet=quiet)
    started = time.perf_counter()
    with transformers_bars(not quiet):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return _finish(run, manifest, recorder, images, keep_checkpoints, seconds=time.perf_counter() - started)


def _check_settings(*, save_steps: int, batch_size: int, epochs: float, eval_size: int | None) -> None:
    for name, value in (("save steps", save_steps), ("batch size", batch_size)):
        if value < 1:
            raise SpotreviewError(f"{name} must be at least 1, got {value}")
    if not epochs > 0:
        raise SpotreviewError(f"epochs must be positive, got {epochs}")
    if eval_size is not None and eval_size < OOD_K + 1:
        raise SpotreviewError(
            f"eval size {eval_size} is too small: `spotreview analyze` compares each image with its {OOD_K} "
            f"nearest neighbours; use --eval-size {OOD_K + 1} or more"
        )


def _check_record_train(record_train):
    """``record_train`` as None, "all" or a positive int (also from the CLI's text)."""
    if record_train is None or record_train == "all":
        return record_train
    try:
        count = int(record_train)
    except (TypeError, ValueError):
        count = 0
    if isinstance(record_train, bool) or count < 1 or str(count) != str(record_train).strip():
        raise SpotreviewError(f"record_train must be a positive whole number or 'all', got {record_train!r}")
    return count


def _load(dataset: str, model: str | None, eval_size, seed: int, learning_rate: float | None, quiet: bool):
    """``(images, net, processor, learning rate)``: the data, and the model to fine-tune."""
    import transformers

    images = load_images(dataset, eval_size=eval_size, seed=seed, quiet=quiet)
    if len(images.train_labels) == 0:
        raise SpotreviewError(f"dataset {dataset!r} has no training images")
    transformers.set_seed(seed)  # the random init of the built-in ViT and the new head
    if model is None:
        net, processor = small_vit(images.class_names)
        return images, net, processor, SMALL_VIT_LR if learning_rate is None else learning_rate
    with transformers_bars(not quiet):
        net, processor = pretrained(model, images.class_names)
    return images, net, processor, PRETRAINED_LR if learning_rate is None else learning_rate


def _parameters(command: dict, lr: float, dev, num_train: int) -> dict:
    """The training parameters as the manifest records them."""
    steps_per_epoch = math.ceil(num_train / command["batch_size"])
    return {
        "save_steps": command["save_steps"],
        "epochs": command["epochs"],
        "batch_size": command["batch_size"],
        "learning_rate": lr,
        "keep_checkpoints": command["keep_checkpoints"],
        "device": dev.type,
        "embed_precision": precision_used("auto", dev, int8=False),  # what the recorder's auto runs as
        "max_steps": math.ceil(steps_per_epoch * command["epochs"]),
    }


def _manifest(command: dict, net, images, parameters: dict) -> dict:
    """A new run's ``manifest.json`` (``finished`` False until training ends)."""
    model = command["model"]
    return {
        "created_by": "spotreview finetune",
        "model": model or "built-in small ViT (random init)",
        "model_config": {
            "model_type": net.config.model_type,
            "num_parameters": int(sum(p.numel() for p in net.parameters())),
            **({k: getattr(net.config, k) for k in SMALL_VIT} if model is None else {}),
        },
        "dataset": command["dataset"],
        "eval_split": images.eval_split,
        "eval_size": command["eval_size"],
        "num_images": len(images.eval_ids),
        "num_train": len(images.train_labels),
        "class_names": images.class_names,
        "seed": command["seed"],
        "versions": versions(),
        "parameters": parameters,
        "command": command,
        "finished": False,
    }


def _start_run(run: Run, manifest: dict, net, processor, keep_checkpoints: bool, quiet: bool) -> None:
    """Write a new run's manifest and processor (the recorder writes eval.csv and images/)."""
    write_json(run.manifest, manifest)
    processor.save_pretrained(run.processor_dir)
    if keep_checkpoints:  # the model before fine-tuning, for re-embedding later
        with transformers_bars(not quiet):
            net.save_pretrained(run.checkpoint_path(0))
        processor.save_pretrained(run.checkpoint_path(0))


def _finish(run: Run, manifest: dict, recorder, images, keep_checkpoints: bool, *, seconds: float) -> Finetuned:
    """Training ended: drop the rolling checkpoint, mark the manifest finished, say what was done."""
    if not keep_checkpoints:  # finished: the rolling checkpoint is not needed any more
        for _, path in run.checkpoints():
            shutil.rmtree(path)
    steps = run.snapshots()
    manifest.update(
        finished=True,
        # milliseconds: a small run records in under 0.05 s, which tenths would write as 0
        seconds=round(seconds, 3),
        record_seconds=round(recorder.seconds, 3),  # of which recording snapshots
        num_train_recorded=_set_size(run.for_set(TRAIN)),
        snapshots=steps,
        accuracy={str(s): _accuracy(run, s, images.eval_labels) for s in (steps[0], steps[-1])},
    )
    write_json(run.manifest, manifest)
    return Finetuned(
        run=run,
        model=manifest["model"],
        dataset=manifest["dataset"],
        snapshots=steps,
        num_images=len(images.eval_ids),
        num_train_recorded=manifest["num_train_recorded"],
        seconds=manifest["seconds"],
        record_seconds=manifest["record_seconds"],
        accuracy={s: manifest["accuracy"][str(s)] for s in (steps[0], steps[-1])},
        checkpoints=len(run.checkpoints()),
    )


def _set_size(run: Run) -> int:
    """How many images the image set ``run`` views lists (0 when the run has no such set)."""
    return len(read_eval_columns(run, paths=False)["id"]) if run.eval_csv.is_file() else 0


def _check_out(run: Run, overwrite: bool, command: dict) -> bool:
    """Whether to resume the unfinished run in ``run`` (made with the same ``command``); raise
    when ``run`` cannot be written."""
    root = run.root
    if not root.exists():
        return False
    if not root.is_dir():
        raise RunDirError(f"{root} is a file; choose another --out")
    if not any(root.iterdir()):
        return False
    if not run.manifest.is_file():
        raise RunDirError(f"{root} exists, is not empty and is not a spotreview run; choose another --out")
    if overwrite:
        return False
    try:
        manifest = run.read_manifest()
    except (ValueError, RunDirError):  # an unreadable manifest is still somebody's run
        manifest = {}
    finished = manifest.get("finished")
    # a setting a run predates reads as None, its default
    made_with = {k: manifest["command"].get(k) for k in command} if isinstance(manifest.get("command"), dict) else None
    if finished is False and made_with == command:
        return True
    if finished is False and made_with is not None:
        key = next(k for k in command if made_with[k] != command[k])
        raise RunDirError(
            f"{root} holds an unfinished run made with other settings ({key} {made_with[key]!r}, "
            f"now {command[key]!r}); repeat its command to resume it, or pass --overwrite to replace it"
        )
    state = {True: "a finished", False: "an unfinished"}.get(finished, "a")
    raise RunDirError(
        f"{root} already holds {state} run with {len(run.snapshots())} snapshots; "
        "choose another --out, or pass --overwrite to replace it"
    )


def _last_checkpoint(run: Run) -> Path | None:
    """The newest complete checkpoint (the Trainer writes ``trainer_state.json`` last)."""
    done = [p for _, p in run.checkpoints() if (p / "trainer_state.json").is_file()]
    return done[-1] if done else None


def _accuracy(run: Run, step: int, labels: np.ndarray) -> float | None:
    path = run.probs_path(step)
    if not path.is_file():
        return None
    return round(float((np.load(path).argmax(1) == labels).mean()), 4)
