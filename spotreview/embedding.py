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
* :class:`spotreview.recorder.EmbeddingRecorder`: a ``TrainerCallback`` that embeds at every
  save during training (and the model before training as step 0), so checkpoints need not
  be kept. It uses :func:`preprocess`, :func:`forward` and :func:`write_snapshot` from here.

Device, precision and model loading live in :mod:`spotreview.models`. Outputs are always float32.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data import to_rgb
from .defaults import EMBED_BATCH_SIZE, SEED

PREPROCESS_BATCH_SIZE = 256  # images converted at once: bounds the float32 working copy (~150 MB at 224 px)
from .errors import DataError, RunDirError, SpotreviewError
from .evalset import eval_images_for
from .models import load_checkpoint, load_processor, resolve_device, resolve_precision, transformers_bars
from .rundir import Run, save_npy

# --- preprocessing and the forward pass ----------------------------------------------


def preprocess(
    images: Sequence,
    processor,
    *,
    dtype: torch.dtype = torch.float32,
    batch_size: int = PREPROCESS_BATCH_SIZE,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> torch.Tensor:
    """Run ``processor`` once over ``images`` (PIL, any mode) -> ``(n, 3, H, W)`` tensor of ``dtype``
    on ``device``. Processors that only resize to a fixed size, rescale and normalise (ViT-like)
    are applied as batched tensor operations on ``device`` (:mod:`spotreview.pixels`)."""
    from tqdm.auto import tqdm

    from . import pixels as fast

    n = len(images)
    plan = fast.plan(processor)
    out = None
    for start in tqdm(range(0, n, batch_size), desc="preprocess", unit="batch", disable=quiet, leave=False):
        batch = [to_rgb(im) for im in images[start : start + batch_size]]
        if plan is not None:
            if out is None:
                out = torch.empty((n, 3, *plan["size"]), dtype=dtype, device=device)
            fast.apply(batch, plan, out[start : start + len(batch)])
            continue
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        if out is None:  # allocate once: no second copy of the whole set at the end
            out = torch.empty((n, *pixels.shape[1:]), dtype=dtype, device=device)
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
    batch_size: int = EMBED_BATCH_SIZE,
    quiet: bool = False,
    desc: str = "embed",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings ``(n, dim)`` float32 and probabilities ``(n, n_classes)`` float32 (or None).

    ``model`` is a transformers image model already on ``device`` and in eval mode;
    ``pixels`` is ``(n, 3, H, W)`` from :func:`preprocess`, on any device.
    """
    from tqdm.auto import tqdm

    base = getattr(model, "base_model", model)
    weights = next(model.parameters()).dtype
    captured = {}
    handle = base.register_forward_hook(lambda module, args, output: captured.__setitem__("out", output))
    n = len(pixels)
    emb = probs = None  # filled in place on the device: no per-batch allocation or device sync
    try:
        with torch.inference_mode(), torch.autocast(
            device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None
        ):
            for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=quiet, leave=False):
                x = pixels[start : start + batch_size].to(device, non_blocking=True)
                if autocast is None and x.dtype != weights:
                    x = x.to(weights)
                out = model(pixel_values=x)
                vectors = _cls_vector(captured.pop("out"))
                if emb is None:
                    emb = torch.empty((n, vectors.shape[1]), dtype=torch.float32, device=device)
                emb[start : start + len(x)] = vectors
                logits = getattr(out, "logits", None) if base is not model else None
                if logits is not None:
                    if probs is None:
                        probs = torch.empty((n, logits.shape[1]), dtype=torch.float32, device=device)
                    probs[start : start + len(x)] = torch.softmax(logits.float(), dim=-1)
    finally:
        handle.remove()
    return emb.cpu().numpy(), (None if probs is None else probs.cpu().numpy())


def write_snapshot(run: Run, step: int, embeddings: np.ndarray, probs: np.ndarray | None) -> None:
    """Write one snapshot atomically: probabilities first, the embedding file (which marks
    the snapshot as done) last, so an interrupted write is simply redone on resume."""
    if probs is not None:
        save_npy(run.probs_path(step), probs)
    save_npy(run.embedding_path(step), embeddings)


# --- post-hoc embedding ---------------------------------------------------------------


def embed(
    run,
    *,
    checkpoints: Sequence[int] | None = None,
    dataset: str | None = None,
    images: str | Path | None = None,
    eval_size: int | None = None,
    seed: int = SEED,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = EMBED_BATCH_SIZE,
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

    eval_images = eval_images_for(
        run, dataset=dataset, images=images, eval_size=eval_size, seed=seed, quiet=quiet
    )
    todo = [(s, p) for s, p in found if not run.embedding_path(s).is_file()]
    if not todo:
        return []

    processor = load_processor(run, todo[0][1])
    # Preprocessed once, on the device (the eval set is reused for every snapshot).
    pixels = preprocess(eval_images, processor, dtype=autocast or torch.float32, device=dev, quiet=quiet)

    done = []
    started = time.perf_counter()
    for step, path in tqdm(todo, desc="snapshots", unit="ckpt", disable=quiet):
        with transformers_bars(False):  # one bar per snapshot is enough
            # bf16 weights, not autocast: layer norms, GELU and softmax run in bf16 too (autocast
            # keeps them in float32 and converts around them); within 1e-2 cosine (tested).
            model = load_checkpoint(path).to(dev, dtype=autocast or torch.float32)
        emb, probs = forward(model, pixels, device=dev, batch_size=batch_size, quiet=quiet, desc=f"step {step}")
        write_snapshot(run, step, emb, probs)
        done.append(step)
        del model
    if run.manifest.is_file():
        run.update_manifest(embed={
            "device": dev.type,
            "precision": "bf16" if autocast else "fp32",
            "batch_size": batch_size,
            "seconds": round(time.perf_counter() - started, 2),
            "steps": done,
        })
    return done

