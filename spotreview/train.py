"""Fine-tuning with the Hugging Face ``Trainer``, recording embeddings at every save.

:func:`finetune` builds (or loads) an image classifier, writes the run directory's
``manifest.json``, ``eval.csv``, ``images/`` and ``processor/``, then trains with two callbacks:

* :class:`LossLogger`: ``log.csv``, one row per Trainer log (step, epoch, loss,
  learning_rate and every other number the Trainer logs);
* :class:`spotreview.EmbeddingRecorder`: ``embeddings/step-STEP.npy`` (+ ``.probs.npy``)
  at step 0 and at every save; checkpoints are only written with ``keep_checkpoints=True``.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

# LossLogger subclasses TrainerCallback; this module is only imported by the commands that train.
from transformers import TrainerCallback

from .data import hub_offline, hub_unreachable, load_images
from .errors import ModelError, RunDirError, SpotreviewError, first_line
from .rundir import Run, write_json, write_text

# Defaults for the built-in demo (digits, small ViT): 1438 training images / 32 per batch
# = 45 steps per epoch, 20 epochs = 900 steps, a save every 50 steps = 18 saves + step 0.
DEFAULT_OUT = "runs/demo"
DEFAULT_SAVE_STEPS = 50
DEFAULT_EPOCHS = 20.0
DEFAULT_BATCH_SIZE = 32
SMALL_VIT_LR = 1e-3  # from scratch, small model: a high rate
PRETRAINED_LR = 5e-5  # fine-tuning pretrained weights: the usual rate
# 8x8 patches of the 32x32 upscaled digits (2x2 original pixels each): 16 tokens + CLS.
# Measured on digits: 4x4 patches were 3x slower and less accurate after the same epochs.
SMALL_VIT = dict(
    image_size=32,
    patch_size=8,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=128,
)


def small_vit(class_names: list[str]):
    """The built-in model: a small randomly initialised ViT for 32x32 images, and its processor."""
    import transformers
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        **SMALL_VIT,
        num_channels=3,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={c: k for k, c in enumerate(class_names)},
    )
    size = {"height": SMALL_VIT["image_size"], "width": SMALL_VIT["image_size"]}
    # Without torchvision, ViTImageProcessor falls back to the PIL one with a warning; ask for it directly.
    processor_cls = getattr(transformers, "ViTImageProcessorPil", None)
    try:
        import torchvision  # noqa: F401

        processor_cls = None
    except ImportError:
        pass
    processor = (processor_cls or transformers.ViTImageProcessor)(size=size)
    return ViTForImageClassification(config), processor


def pretrained(name: str, class_names: list[str]):
    """A hub id or local ``save_pretrained`` directory with a new head for ``class_names``."""
    from transformers import AutoConfig, AutoImageProcessor

    from .embedding import image_model_class

    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise ModelError(f"{name} has no config.json; expected a model directory written by save_pretrained")
    else:
        why = hub_unreachable()
        if why:
            raise ModelError(
                f"model {name!r} is not a local directory and could not be loaded from the hub ({why}); "
                "give a save_pretrained directory, or leave --model out for the built-in small ViT"
            )
    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as e:
        offline = hub_offline() and not Path(name).is_dir()
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else first_line(e)
        raise ModelError(
            f"could not load model {name!r} ({why}); give a hub id or a save_pretrained directory, "
            "or leave --model out for the built-in small ViT"
        ) from None
    cls = image_model_class(config, name, classifier=True)
    try:
        model = cls.from_pretrained(
            name,
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={c: k for k, c in enumerate(class_names)},
            ignore_mismatched_sizes=True,  # a new head for our classes
        )
    except Exception as e:
        raise ModelError(f"could not load the weights of {name!r} ({first_line(e)})") from None
    try:
        processor = AutoImageProcessor.from_pretrained(name)
    except Exception as e:
        raise ModelError(
            f"{name!r} has no image processor ({first_line(e)}); save one beside the model with "
            "processor.save_pretrained(...)"
        ) from None
    return model, processor


class LossLogger(TrainerCallback):
    """Writes ``log.csv``: one row per Trainer log with step, epoch, loss, learning_rate and
    every other number logged. The whole file is rewritten atomically at every log, with the
    union of the columns seen so far (logs are few: one per ``logging_steps``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        import pandas as pd

        if not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "loss": np.nan, "learning_rate": np.nan}
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                row[key] = float(value)
        self.rows.append(row)
        write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


def finetune(
    out: str | Path = DEFAULT_OUT,
    *,
    model: str | None = None,
    dataset: str = "digits",
    eval_size: int | None = None,
    save_steps: int = DEFAULT_SAVE_STEPS,
    epochs: float = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float | None = None,
    seed: int = 0,
    keep_checkpoints: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
) -> Run:
    """Fine-tune an image classifier on ``dataset`` and record its embeddings into run ``out``.

    ``model``: None for the built-in small ViT (random init, 32x32 inputs, offline), a hub id
    or a local ``save_pretrained`` directory (a new classification head is attached).
    ``learning_rate``: None picks 1e-3 for the built-in ViT and 5e-5 for pretrained models.
    A snapshot is recorded at step 0 and every ``save_steps`` optimizer steps (and the last
    step). ``out`` must not hold a run already unless ``overwrite`` (then it is replaced once
    the data and model have loaded); a non-empty folder that is not a run is never touched.
    Returns the :class:`Run`.
    """
    import torch
    import transformers
    from transformers import Trainer, TrainingArguments

    from . import __version__
    from .embedding import EmbeddingRecorder, resolve_device, resolve_precision, transformers_bars, write_eval_set

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
        "versions": {"spotreview": __version__, "torch": torch.__version__, "transformers": transformers.__version__},
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
    return run


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
        except ValueError:  # an unreadable manifest is still somebody's run
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
