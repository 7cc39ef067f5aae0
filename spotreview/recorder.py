"""Trainer callbacks that record a run while it trains.

* :class:`EmbeddingRecorder`: ``embeddings/step-STEP.npy`` (+ ``.probs.npy``) at step 0
  and at every save, so checkpoints need not be kept;
* :class:`LossLogger`: ``log.csv``, one row per Trainer log.

transformers loads with this module (the callbacks subclass ``TrainerCallback``); only the
commands that train import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import TrainerCallback

from .data import ImageSet
from .defaults import EMBED_BATCH_SIZE
from .embedding import forward, preprocess, write_snapshot
from .errors import SpotreviewError
from .evalset import write_eval_set
from .models import resolve_precision
from .rundir import Run, write_text


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
        batch_size: int = EMBED_BATCH_SIZE,
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
