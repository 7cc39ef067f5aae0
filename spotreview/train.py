"""Fine-tuning with the Hugging Face ``Trainer``, recording embeddings at every save.

:func:`finetune` builds (or loads) an image classifier (:mod:`spotreview.models`), writes
the run directory's ``manifest.json``, ``eval.csv``, ``images/`` and ``processor/``, then
trains with the two callbacks of :mod:`spotreview.recorder`: ``LossLogger`` (``log.csv``)
and ``EmbeddingRecorder`` (``embeddings/step-STEP.npy`` at step 0 and every save).
Checkpoints are only written with ``keep_checkpoints=True``. Returns a :class:`Finetuned`.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import load_images
from .defaults import DATASET, EPOCHS, RUN_DIR, SAVE_STEPS, SEED, TRAIN_BATCH_SIZE
from .errors import RunDirError, SpotreviewError
from .evalset import write_eval_set
from .models import (
    PRETRAINED_LR,
    SMALL_VIT,
    SMALL_VIT_LR,
    pretrained,
    resolve_device,
    resolve_precision,
    small_vit,
    transformers_bars,
    versions,
)
from .rundir import Run, write_json


@dataclass
class Finetuned:
    """What :func:`finetune` did (also in the run's ``manifest.json``)."""

    run: Run
    model: str  # what was fine-tuned: a hub id, a directory or the built-in small ViT
    dataset: str
    snapshots: list[int]  # steps with embeddings, ascending
    num_images: int  # evaluation images embedded per snapshot
    seconds: float  # training time
    accuracy: dict[int, float | None]  # eval accuracy at the first and the last snapshot
    checkpoints: int  # checkpoint-STEP directories kept

    def describe(self) -> str:
        """A few lines for a terminal: what was trained, the snapshots, the accuracy, the files."""
        steps = self.snapshots
        acc = " -> ".join(f"{a:.1%} (step {s})" for s, a in self.accuracy.items() if a is not None)
        kept = f", {self.checkpoints} checkpoints" if self.checkpoints else ""
        return "\n".join([
            f"Fine-tuned {self.model} on {self.dataset} in {self.seconds:.0f} s: "
            f"{len(steps)} snapshots (steps {steps[0]}..{steps[-1]}) of {self.num_images} eval images",
            *([f"Eval accuracy: {acc}"] if acc else []),
            f"Run: {self.run.root} (embeddings/, log.csv, images/, eval.csv, manifest.json{kept})",
        ])


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
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
) -> Finetuned:
    """Fine-tune an image classifier on ``dataset`` and record its embeddings into run ``out``.

    ``model``: None for the built-in small ViT (random init, 32x32 inputs, offline), a hub id
    or a local ``save_pretrained`` directory (a new classification head is attached).
    ``learning_rate``: None picks 1e-3 for the built-in ViT and 5e-5 for pretrained models.
    A snapshot is recorded at step 0 and every ``save_steps`` optimizer steps (and the last
    step). ``out`` must not hold a run already unless ``overwrite`` (then it is replaced once
    the data and model have loaded); a non-empty folder that is not a run is never touched.
    Returns a :class:`Finetuned` record (its ``run`` is the :class:`Run`).
    """
    import torch
    import transformers
    from transformers import Trainer, TrainingArguments

    from .recorder import EmbeddingRecorder, LossLogger

    for name, value in (("save steps", save_steps), ("batch size", batch_size)):
        if value < 1:
            raise SpotreviewError(f"{name} must be at least 1, got {value}")
    if not epochs > 0:
        raise SpotreviewError(f"epochs must be positive, got {epochs}")
    run = Run(out)
    _check_out(run, overwrite)
    dev = resolve_device(device)

    images = load_images(dataset, eval_size=eval_size, seed=seed, quiet=quiet)
    if len(images.train_labels) == 0:
        raise SpotreviewError(f"dataset {dataset!r} has no training images")
    transformers.set_seed(seed)  # the random init of the built-in ViT and the new head
    if model is None:
        net, processor = small_vit(images.class_names)
        lr = SMALL_VIT_LR if learning_rate is None else learning_rate
    else:
        with transformers_bars(not quiet):
            net, processor = pretrained(model, images.class_names)
        lr = PRETRAINED_LR if learning_rate is None else learning_rate

    if overwrite and run.root.exists():
        shutil.rmtree(run.root)
    run.root.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = math.ceil(len(images.train_labels) / batch_size)
    parameters = {
        "save_steps": save_steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "keep_checkpoints": keep_checkpoints,
        "device": dev.type,
        "embed_precision": "bf16" if resolve_precision("auto", dev) else "fp32",  # the recorder uses auto
        "max_steps": math.ceil(steps_per_epoch * epochs),
    }
    manifest = {
        "created_by": "spotreview finetune",
        "model": model or "built-in small ViT (random init)",
        "model_config": {
            "model_type": net.config.model_type,
            "num_parameters": int(sum(p.numel() for p in net.parameters())),
            **({k: getattr(net.config, k) for k in SMALL_VIT} if model is None else {}),
        },
        "dataset": dataset,
        "eval_split": images.eval_split,
        "eval_size": eval_size,
        "num_images": len(images.eval_ids),
        "num_train": len(images.train_labels),
        "class_names": images.class_names,
        "seed": seed,
        "versions": versions(),
        "parameters": parameters,
        "finished": False,
    }
    write_json(run.manifest, manifest)
    write_eval_set(run, images, quiet=quiet)
    processor.save_pretrained(run.processor_dir)

    recorder = EmbeddingRecorder(run, images=images.eval_images, processor=processor, keep_checkpoints=keep_checkpoints)
    args = TrainingArguments(
        output_dir=str(run.root),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=0.1,  # a ratio of the total steps
        weight_decay=0.01,
        save_strategy="steps",
        save_steps=save_steps,
        logging_strategy="steps",
        logging_steps=max(1, save_steps // 2),
        eval_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=quiet,
        use_cpu=dev.type == "cpu",
        bf16=dev.type == "cuda" and torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=dev.type == "cuda",
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=net,
        args=args,
        train_dataset=_TrainSet(images.train_images, images.train_labels),
        data_collator=_Collate(processor),
        processing_class=processor,  # saved into kept checkpoints, so `embed` finds it there too
        callbacks=[LossLogger(run.log_csv), recorder],
    )
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    started = time.perf_counter()
    with transformers_bars(not quiet):
        trainer.train()

    steps = run.snapshots()
    manifest.update(
        finished=True,
        seconds=round(time.perf_counter() - started, 1),
        snapshots=steps,
        accuracy={str(s): _accuracy(run, s, images.eval_labels) for s in (steps[0], steps[-1])},
    )
    write_json(run.manifest, manifest)
    return Finetuned(
        run=run,
        model=manifest["model"],
        dataset=dataset,
        snapshots=steps,
        num_images=len(images.eval_ids),
        seconds=manifest["seconds"],
        accuracy={s: manifest["accuracy"][str(s)] for s in (steps[0], steps[-1])},
        checkpoints=len(run.checkpoints()),
    )


def _check_out(run: Run, overwrite: bool) -> None:
    root = run.root
    if not root.exists():
        return
    if not root.is_dir():
        raise RunDirError(f"{root} is a file; choose another --out")
    if not any(root.iterdir()):
        return
    if not run.manifest.is_file():
        raise RunDirError(f"{root} exists, is not empty and is not a spotreview run; choose another --out")
    if not overwrite:
        try:
            finished = run.read_manifest().get("finished")
        except (ValueError, RunDirError):  # an unreadable manifest is still somebody's run
            finished = None
        state = {True: "a finished", False: "an unfinished"}.get(finished, "a")
        raise RunDirError(
            f"{root} already holds {state} run with {len(run.snapshots())} snapshots; "
            "choose another --out, or pass --overwrite to replace it"
        )


def _accuracy(run: Run, step: int, labels: np.ndarray) -> float | None:
    path = run.probs_path(step)
    if not path.is_file():
        return None
    return round(float((np.load(path).argmax(1) == labels).mean()), 4)


class _TrainSet:
    """A map-style dataset of ``{"image": PIL, "label": int}`` (decoded lazily by ``images``)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": int(self.labels[i])}


class _Collate:
    """Batches of PIL images -> ``pixel_values`` (via the model's processor) and ``labels``."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, batch):
        import torch

        from .data import to_rgb

        pixels = self.processor(images=[to_rgb(b["image"]) for b in batch], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": torch.tensor([b["label"] for b in batch], dtype=torch.long)}
