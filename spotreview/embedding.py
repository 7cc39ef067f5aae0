"""Embeddings (and class probabilities) of the evaluation images at every snapshot.

One forward pass per image and snapshot gives both:

* the **embedding**: the CLS vector ``last_hidden_state[:, 0]`` of the base model (after its
  final layer norm: what a ViT classification head reads), captured with a forward hook on
  the base model while the full model runs. Models whose last hidden state is not
  ``(batch, tokens, dim)`` (CNNs) give their ``pooler_output`` flattened instead. Models
  without a CLS token (Swin, ...) still give token 0; use a ViT-like model for CLS semantics.
* the **probabilities**: softmax of the classification logits, when the snapshot has a
  classification head (config architecture ``*ForImageClassification``).

The evaluation images are preprocessed once with the run's image processor into one tensor
(in the compute dtype) and reused for every snapshot.

Two ways in:

* :func:`embed` (``spotreview embed RUN``): post hoc, for every ``checkpoint-STEP`` of a run
  or of any folder of Hugging Face checkpoints; resumes (skips snapshots already embedded).
* :class:`EmbeddingRecorder`: a ``TrainerCallback`` that embeds at every save during
  training (and the model before training as step 0), so checkpoints need not be kept.

Precision ``auto`` means bf16 autocast on CUDA GPUs with bf16 support and on CPUs with AMX or
AVX512-BF16 (where bf16 matmuls are native), fp32 elsewhere. Weights stay fp32; autocast
runs the matmuls in bf16 and layer norms / softmax in fp32. Outputs are always float32.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Sequence

import numpy as np

# transformers (and torch) load here because EmbeddingRecorder must subclass
# TrainerCallback; this module is only imported by the commands that compute.
import torch
from transformers import TrainerCallback

from .data import ImageSet, load_images, to_rgb
from .errors import DataError, ModelError, RunDirError, SpotreviewError, first_line
from .rundir import Run, save_npy, write_json, write_text

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# ViT-base, 2-core AMX CPU, bf16 autocast: 20.7 img/s at batch 32 vs 13.1 at 64 and 17.1 at
# 16 in a forward-only run (end to end 14.4 vs 13.2 at 64): 64 x 197 tokens fall out of cache.
DEFAULT_BATCH_SIZE = 32


# --- device and precision ----------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise SpotreviewError(f"unknown device {device!r}; expected auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpotreviewError("device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(device)


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto|fp32|bf16) on ``device``; None = plain fp32."""
    if precision not in ("auto", "fp32", "bf16"):
        raise SpotreviewError(f"unknown precision {precision!r}; expected auto, fp32 or bf16")
    if precision == "bf16" or (precision == "auto" and bf16_is_native(device)):
        return torch.bfloat16
    return None


# --- preprocessing and the forward pass ----------------------------------------------


def preprocess(
    images: Sequence,
    processor,
    *,
    dtype: torch.dtype = torch.float32,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
) -> torch.Tensor:
    """Run ``processor`` once over ``images`` (PIL, any mode) -> ``(n, 3, H, W)`` tensor of ``dtype``."""
    from tqdm.auto import tqdm

    n = len(images)
    out = None
    for start in tqdm(range(0, n, batch_size), desc="preprocess", unit="batch", disable=quiet, leave=False):
        batch = [to_rgb(im) for im in images[start : start + batch_size]]
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        if out is None:  # allocate once: no second copy of the whole set at the end
            out = torch.empty((n, *pixels.shape[1:]), dtype=dtype)
        out[start : start + len(batch)] = pixels
    if out is None:
        raise DataError("there are no evaluation images to embed")
    return out


def _cls_vector(output) -> torch.Tensor:
    """``(batch, dim)`` from a base model's output (see the module doc)."""
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    if hidden.ndim == 3:
        return hidden[:, 0]
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:  # a feature map without a pooler: average over the spatial positions
        pooled = hidden.flatten(2).mean(-1)
    return pooled.flatten(1)


def forward(
    model,
    pixels: torch.Tensor,
    *,
    device: torch.device,
    autocast: torch.dtype | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
    desc: str = "embed",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings ``(n, dim)`` float32 and probabilities ``(n, n_classes)`` float32 (or None).

    ``model`` is a transformers image model already on ``device`` and in eval mode;
    ``pixels`` is ``(n, 3, H, W)`` from :func:`preprocess`, on any device.
    """
    from tqdm.auto import tqdm

    base = getattr(model, "base_model", model)
    captured = {}
    handle = base.register_forward_hook(lambda module, args, output: captured.__setitem__("out", output))
    embeddings, probs = [], []
    try:
        with torch.inference_mode(), torch.autocast(
            device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None
        ):
            for start in tqdm(range(0, len(pixels), batch_size), desc=desc, unit="batch", disable=quiet, leave=False):
                x = pixels[start : start + batch_size].to(device, non_blocking=True)
                out = model(pixel_values=x)
                embeddings.append(_cls_vector(captured.pop("out")).float().cpu())
                logits = getattr(out, "logits", None) if base is not model else None
                if logits is not None:
                    probs.append(torch.softmax(logits.float(), dim=-1).cpu())
    finally:
        handle.remove()
    emb = torch.cat(embeddings).numpy().astype(np.float32, copy=False)
    return emb, (torch.cat(probs).numpy().astype(np.float32, copy=False) if probs else None)


def write_snapshot(run: Run, step: int, embeddings: np.ndarray, probs: np.ndarray | None) -> None:
    """Write one snapshot atomically: probabilities first, the embedding file (which marks
    the snapshot as done) last, so an interrupted write is simply redone on resume."""
    if probs is not None:
        save_npy(run.probs_path(step), probs)
    save_npy(run.embedding_path(step), embeddings)


# --- models --------------------------------------------------------------------------


def _is_classifier(config) -> bool:
    return any(a.endswith("ForImageClassification") for a in (getattr(config, "architectures", None) or []))


def image_model_class(config, name: str, *, classifier: bool | None = None):
    """The Auto class to load ``config`` with, or ``ModelError`` when it is not an image model.

    ``classifier=None`` follows the config's architectures; True requires an
    image-classification model (for fine-tuning).
    """
    from transformers import AutoModel, AutoModelForImageClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING, MODEL_MAPPING

    can_classify = type(config) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING
    if classifier or (classifier is None and _is_classifier(config) and can_classify):
        if not can_classify:
            raise ModelError(
                f"{name} is a {config.model_type} model, not an image-classification model; give an image "
                "model such as google/vit-base-patch16-224-in21k, or leave --model out for the built-in small ViT"
            )
        return AutoModelForImageClassification
    try:
        cls = MODEL_MAPPING[type(config)]
    except KeyError:
        cls = None
    if cls is None or getattr(cls, "main_input_name", None) != "pixel_values":
        reads = getattr(cls, "main_input_name", "unknown inputs")
        raise ModelError(
            f"{name} is a {config.model_type} model that reads {reads}, not images; "
            "expected an image model (e.g. a ViTForImageClassification checkpoint)"
        )
    return AutoModel


def load_checkpoint(path: str | Path):
    """Load one saved snapshot (a ``save_pretrained`` / Trainer checkpoint dir) in eval mode.

    Raises ``ModelError`` one-liners for a missing config, missing or corrupt weights, and
    models that do not read images. Never deletes anything.
    """
    from transformers import AutoConfig

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} has no config.json; expected a checkpoint saved with save_pretrained or by the Trainer"
        )
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ModelError(
            f"{path} has no weights (model.safetensors or pytorch_model.bin); "
            "save the model there again, or move the directory out of the run"
        )
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"could not read {path / 'config.json'}: {first_line(e)}") from None
    cls = image_model_class(config, str(path))
    try:
        model = cls.from_pretrained(path)
    except Exception as e:
        raise ModelError(
            f"could not load the weights in {path} ({first_line(e)}): the file is truncated or corrupt; "
            "save the model there again, or move the directory out of the run"
        ) from None
    return model.eval()


def load_processor(run: Run, checkpoint: Path | None):
    """The run's ``processor/`` if saved, else the checkpoint's own processor files."""
    from transformers import AutoImageProcessor

    for where in (run.processor_dir, checkpoint):
        if where is not None and (Path(where) / "preprocessor_config.json").is_file():
            try:
                return AutoImageProcessor.from_pretrained(where)
            except Exception as e:
                raise ModelError(f"could not load the image processor in {where}: {first_line(e)}") from None
    raise ModelError(
        f"no image processor: neither {run.processor_dir} nor {checkpoint} has preprocessor_config.json; "
        f"save one there with processor.save_pretrained({str(run.processor_dir)!r})"
    )


# --- the evaluation set on disk ---------------------------------------------------------


def write_eval_set(run: Run, images: ImageSet, *, quiet: bool = False) -> None:
    """``images/ID.png`` for every evaluation image, then ``eval.csv`` (id,label,class_name,image)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .rundir import atomic_path

    run.images_dir.mkdir(parents=True, exist_ok=True)
    for image_id, image in tqdm(
        zip(images.eval_ids, images.eval_images), total=len(images.eval_ids), desc="eval images",
        unit="img", disable=quiet, leave=False,
    ):
        with atomic_path(run.image_path(image_id)) as tmp:
            to_rgb(image).save(tmp, format="PNG")
    table = pd.DataFrame(
        {
            "id": images.eval_ids,
            "label": images.eval_labels.astype(np.int64),
            "class_name": [images.class_names[k] for k in images.eval_labels],
            "image": [f"images/{i}.png" for i in images.eval_ids],
        }
    )
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
        with Image.open(path) as im:
            im.load()
            images.append(to_rgb(im))
    return images


def _versions() -> dict[str, str]:
    import transformers

    from . import __version__

    return {"spotreview": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


def _eval_images_for(run: Run, *, dataset, images, eval_size, seed, quiet) -> list:
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
                "versions": _versions(),
                "created_by": "spotreview embed",
            },
        )
    return list(imageset.eval_images)


# --- post-hoc embedding ---------------------------------------------------------------


def embed(
    run,
    *,
    checkpoints: Sequence[int] | None = None,
    dataset: str | None = None,
    images: str | Path | None = None,
    eval_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
) -> list[int]:
    """Embed the evaluation images at every ``checkpoint-STEP`` of ``run`` not embedded yet.

    ``run``: a run directory, or any folder of Hugging Face checkpoints (``checkpoint-STEP/``);
    in a folder without ``eval.csv``, ``dataset`` (a name, save_to_disk dir or image folder:
    its evaluation split) or ``images`` (a folder: all of its images) says what to embed, cut
    to ``eval_size`` (seeded, stratified). ``checkpoints``: only these steps.
    Writes ``embeddings/step-STEP.npy`` ``(n, dim)`` float32 and, for classifiers,
    ``embeddings/step-STEP.probs.npy`` ``(n, n_classes)`` float32.
    Returns the steps newly embedded, ascending; snapshots already embedded are skipped.
    """
    from tqdm.auto import tqdm

    run = Run(run).require()
    if batch_size < 1:
        raise SpotreviewError(f"batch size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    autocast = resolve_precision(precision, dev)
    found = run.checkpoints()
    if checkpoints is not None:
        wanted = {int(s) for s in checkpoints}
        missing = sorted(wanted - {s for s, _ in found})
        if missing:
            raise RunDirError(f"{run.root} has no checkpoint-{missing[0]}; it has steps {[s for s, _ in found]}")
        found = [(s, p) for s, p in found if s in wanted]
    if not found:
        if run.snapshots():
            return []  # recorded during training; nothing left to compute
        if not any(run.root.iterdir()):
            raise RunDirError(
                f"run directory {run.root} is empty; create a run with `spotreview finetune --out {run.root}` "
                "or put checkpoint-STEP directories in it"
            )
        raise RunDirError(
            f"{run.root} has no checkpoint-STEP directories and no embeddings; expected a run made by "
            "`spotreview finetune` or a folder of Trainer checkpoints"
        )

    eval_images = _eval_images_for(
        run, dataset=dataset, images=images, eval_size=eval_size, seed=seed, quiet=quiet
    )
    todo = [(s, p) for s, p in found if not run.embedding_path(s).is_file()]
    if not todo:
        return []

    processor = load_processor(run, todo[0][1])
    pixels = preprocess(eval_images, processor, dtype=autocast or torch.float32, batch_size=batch_size, quiet=quiet)
    if dev.type == "cuda":
        pixels = pixels.to(dev)  # the eval set is reused for every snapshot: move it once

    done = []
    started = time.perf_counter()
    for step, path in tqdm(todo, desc="snapshots", unit="ckpt", disable=quiet):
        with transformers_bars(False):  # one bar per snapshot is enough
            model = load_checkpoint(path).to(dev)
        emb, probs = forward(
            model, pixels, device=dev, autocast=autocast, batch_size=batch_size, quiet=quiet, desc=f"step {step}"
        )
        write_snapshot(run, step, emb, probs)
        done.append(step)
        del model
    if run.manifest.is_file():
        manifest = run.read_manifest()
        manifest["embed"] = {
            "device": dev.type,
            "precision": "bf16" if autocast else "fp32",
            "batch_size": batch_size,
            "seconds": round(time.perf_counter() - started, 2),
            "steps": done,
        }
        write_json(run.manifest, manifest)
    return done


# --- in-training recording ----------------------------------------------------------------


class EmbeddingRecorder(TrainerCallback):
    """Embed the evaluation images with the live model at every Trainer save.

    Add it to any ``transformers.Trainer``::

        recorder = EmbeddingRecorder("runs/mine", images=eval_images, processor=processor,
                                     labels=eval_labels, class_names=names)
        Trainer(..., args=TrainingArguments(save_strategy="steps", save_steps=20, ...),
                callbacks=[recorder]).train()

    * ``on_train_begin`` records step 0: the model before fine-tuning.
    * ``on_step_end`` records step STEP whenever the Trainer is about to save (``control.should_save``,
      set by ``DefaultFlowCallback``, which runs before user callbacks; it is also set at the
      last step with ``save_strategy="steps"``). With ``keep_checkpoints=False`` the save is
      then cancelled, so only the embedding files are written.

    Give either ``pixel_values`` ``(n, 3, H, W)`` (already preprocessed) or ``images`` + ``processor``.
    With ``labels`` (and ``class_names``, ``ids``) and no ``eval.csv`` in the run yet, the
    evaluation set is written too, so ``spotreview analyze`` can read it.
    """

    def __init__(
        self,
        run,
        *,
        pixel_values: torch.Tensor | None = None,
        images: Sequence | None = None,
        processor=None,
        labels: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        keep_checkpoints: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = "auto",
        quiet: bool = True,
    ):
        if pixel_values is None and (images is None or processor is None):
            raise SpotreviewError("EmbeddingRecorder needs pixel_values, or images and their processor")
        self.run = Run(run)
        self.keep_checkpoints = keep_checkpoints
        self.batch_size = batch_size
        self.precision = precision
        self.quiet = quiet
        self._pixels = pixel_values
        self._images = images
        self._processor = processor
        self._device = None
        self._autocast = None
        self.recorded: list[int] = []
        if labels is not None and images is not None and not self.run.eval_csv.is_file():
            labels = np.asarray(labels, dtype=np.int64)
            names = list(class_names) if class_names is not None else [str(k) for k in range(labels.max() + 1)]
            given = ImageSet(
                train_images=[],
                train_labels=np.zeros(0, np.int64),
                eval_images=images,
                eval_labels=labels,
                eval_ids=list(ids) if ids is not None else [f"eval-{i:05d}" for i in range(len(labels))],
                class_names=names,
                dataset="given to EmbeddingRecorder",
                eval_split="given",
            )
            write_eval_set(self.run, given, quiet=quiet)

    def _prepare(self, model) -> None:
        device = next(model.parameters()).device
        if self._device == device:
            return
        self._device = device
        self._autocast = resolve_precision(self.precision, device)
        dtype = self._autocast or torch.float32
        if self._pixels is None:
            self._pixels = preprocess(
                self._images, self._processor, dtype=dtype, batch_size=self.batch_size, quiet=True
            )
        self._pixels = self._pixels.to(device=device, dtype=dtype)

    def record(self, step: int, model) -> None:
        """Embed with ``model`` as it is now and write ``step-STEP`` files."""
        self._prepare(model)
        was_training = model.training
        model.eval()  # no dropout: the embedding of the weights, not of one noisy pass
        try:
            emb, probs = forward(
                model, self._pixels, device=self._device, autocast=self._autocast,
                batch_size=self.batch_size, quiet=self.quiet, desc=f"record step {step}",
            )
        finally:
            model.train(was_training)
        write_snapshot(self.run, step, emb, probs)
        self.recorded.append(step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0 and state.is_world_process_zero:
            self.record(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_save:
            if state.is_world_process_zero:
                self.record(state.global_step, model)
            if not self.keep_checkpoints:
                control.should_save = False
        return control


@contextlib.contextmanager
def transformers_bars(enabled: bool):
    """Silence transformers' own progress bars (weight loading, shard writing) unless ``enabled``."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    if not enabled:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            logging.enable_progress_bar()
