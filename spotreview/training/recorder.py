"""The Trainer callback that records a run while it trains: :class:`EmbeddingRecorder`.

It writes ``embeddings/step-STEP.npy`` (+ ``.probs.npy``) at step 0, at every save the
Trainer makes (whatever ``save_strategy``), at the last step and at its own cadence; the
step and epoch of each snapshot into ``snapshots.csv``; ``log.csv`` from the Trainer's
logs; and ``training.json`` (training or finished, and its process) for a live review.
It never changes what the Trainer does (saves, best model, resume).

Under ``torchrun`` / ``accelerate launch`` every process embeds its share of the evaluation
set and process 0 gathers the shares in evaluation order and writes every file.

transformers loads with this module (the callback subclasses ``TrainerCallback``); only the
commands that train import it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from transformers import TrainerCallback

from spotreview.defaults import EMBED_BATCH_SIZE, PRECISION, Precision
from spotreview.embedding.forward import forward, preprocess
from spotreview.embedding.models import label_order, precision_used, resolve_precision
from spotreview.errors import DataError, SpotreviewError
from spotreview.rundir.atomic import sha256_bytes
from spotreview.rundir.evalset import check_eval_set, clear_eval_set, read_eval, write_eval_set
from spotreview.rundir.run import EVAL, TRAIN, Run, write_snapshot
from spotreview.rundir.traininglog import log_row, record_snapshot, write_log, write_training_state

logger = logging.getLogger(__name__)


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed job, ``(0, 1)`` outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EmbeddingRecorder(TrainerCallback):
    """Embed the evaluation images with the live model while any ``transformers.Trainer`` trains.

    Add it to your Trainer::

        recorder = EmbeddingRecorder("runs/mine", images=eval_images, processor=processor,
                                     labels=eval_labels, class_names=names)
        Trainer(..., callbacks=[recorder]).train()

    Snapshots are recorded

    * at step 0 (``on_train_begin``): the model before fine-tuning;
    * after every checkpoint the Trainer saves (``on_save``), whatever ``save_strategy``
      (``steps``, ``epoch``, ``best``); the recorder never asks for, cancels or needs a save;
    * at the last step (``max_steps``), before ``load_best_model_at_end`` swaps the weights;
    * every ``every_steps`` optimizer steps and every ``every_epochs`` epochs, if given.

    Give either ``pixel_values`` ``(n, 3, H, W)`` (already preprocessed) or ``images`` + ``processor``.
    With ``labels`` (and ``class_names``, ``ids``) and no ``eval.csv`` in the run yet, the
    evaluation set is written too, so ``spotreview analyze`` can read it. A run holds one
    evaluation set: if it has an ``eval.csv`` already, what is given must match it (count,
    ids, labels, image pixels) or the recorder refuses, unless ``overwrite=True`` starts the
    run's evaluation set, embeddings and logs afresh (checkpoints are never touched).

    ``train_images`` (PIL images) with ``train_labels`` (and ``train_ids``, default
    ``train-00000``...): training images to record at every snapshot too, as the run's training
    set (``train/``: ``spotreview review RUN --set train``). Mislabels that hurt are in the
    training data; each snapshot then costs one more forward pass over these images
    (``seconds`` covers both). Give a sample for a large training set.
    ``write_log``: write ``log.csv`` (one row per Trainer log) from ``on_log``.
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
        train_images: Sequence | None = None,
        train_labels: Sequence[int] | None = None,
        train_ids: Sequence[str] | None = None,
        every_steps: int | None = None,
        every_epochs: int | None = None,
        write_log: bool = True,
        overwrite: bool = False,
        batch_size: int = EMBED_BATCH_SIZE,
        precision: Precision = PRECISION,
        quiet: bool = True,
    ):
        if pixel_values is None and (images is None or processor is None):
            raise SpotreviewError("EmbeddingRecorder needs pixel_values, or images and their processor")
        if train_images is not None and (train_labels is None or processor is None):
            raise SpotreviewError("EmbeddingRecorder needs train_labels and the processor with train_images")
        precision_used(precision, torch.device("cpu"), int8=False)  # int8 refused here, unknown names too
        for name, value in (("every_steps", every_steps), ("every_epochs", every_epochs)):
            if value is not None and value < 1:
                raise SpotreviewError(f"{name} must be at least 1, got {value}")
        self.run = Run(run, EVAL)
        self.every_steps, self.every_epochs = every_steps, every_epochs
        self.write_log = write_log
        self.batch_size = batch_size
        self.precision = precision
        self.quiet = quiet
        self._processor = processor
        self._device = None
        self._autocast = None
        self._order = False  # probability columns in the run's class order (models.label_order), once known
        self._class_names = list(class_names) if class_names is not None else None
        self.recorded: list[int] = []
        self._training = False  # between the Trainer's on_train_begin and on_train_end
        self._max_steps: int | None = None
        self.processes = 1  # processes that shared the last snapshot (torchrun / accelerate launch)
        self.seconds = 0.0  # spent recording (preprocessing, forward passes, gathering, writing)
        self.overwrite = overwrite
        writer = int(os.environ.get("RANK", "0")) == 0  # torchrun / accelerate set RANK in every process
        if overwrite and writer and self.run.eval_csv.is_file():
            clear_eval_set(self.run)  # the training set with it
        # the training set first: the evaluation set's file marks a snapshot as recorded
        self._sets = []
        if train_images is not None:
            self._sets.append(
                _Set(self.run.for_set(TRAIN), None, train_images, train_labels, train_ids, "train", writer, self)
            )
        self._sets.append(_Set(self.run, pixel_values, images, labels, ids, "eval", writer, self))

    # --- embedding ---------------------------------------------------------------
    def _prepare(self, model) -> None:
        device = next(model.parameters()).device
        if self._device == device:
            return
        self._device = device
        self._autocast = resolve_precision(self.precision, device, int8=False)
        dtype = self._autocast or torch.float32
        for image_set in self._sets:
            if image_set.pixels is None:
                image_set.pixels = preprocess(image_set.images, self._processor, dtype=dtype, device=device, quiet=True)
            image_set.pixels = image_set.pixels.to(device=device, dtype=dtype)
            _same_on_every_rank(image_set.pixels, self._device, image_set.run.set_name)

    def _run_class_names(self) -> list[str] | None:
        if self.run.manifest.is_file() and self.run.read_manifest().get("class_names"):
            return list(self.run.read_manifest()["class_names"])
        if self.run.eval_csv.is_file():
            pairs = dict(zip(*[read_eval(self.run)[c].tolist() for c in ("label", "class_name")]))
            if sorted(pairs) == list(range(len(pairs))):  # every class has an image: the names are complete
                return [pairs[k] for k in range(len(pairs))]
        return None

    def record(self, step: int, model, epoch: float | None = None) -> None:
        """Embed with ``model`` as it is now and write ``step-STEP`` files of every image set
        (every process of a distributed job must call this together; process 0 writes)."""
        if step in self.recorded:
            return
        started = time.perf_counter()
        try:
            self._record(step, model, epoch)
        finally:
            self.seconds += time.perf_counter() - started

    def _record(self, step: int, model, epoch: float | None) -> None:
        _last_collectives.clear()  # the last record's: done, and long let go by their worker threads
        self._prepare(model)
        rank, world = _world()
        self.processes = world
        was_training = model.training
        model.eval()  # no dropout: the embedding of the weights, not of one noisy pass
        try:
            for image_set in self._sets:
                self._record_set(image_set, step, model, rank, world)
        finally:
            model.train(was_training)
        self.recorded.append(step)
        if rank == 0:
            record_snapshot(self.run, step, epoch)
            if self._training:  # inside a Trainer's train(); record() called by hand says nothing of training
                write_training_state(self.run, "training", step=step, max_steps=self._max_steps)

    def _record_set(self, image_set: _Set, step: int, model, rank: int, world: int) -> None:
        """One image set's ``step-STEP`` files: every process embeds its share, process 0 writes."""
        pixels = image_set.pixels
        n = len(pixels)
        share = math.ceil(n / world)  # every process runs as many batches (FSDP needs all in each forward)
        rows = torch.arange(rank * share, (rank + 1) * share).clamp(max=n - 1).to(pixels.device)
        emb, probs = forward(
            model,
            pixels[rows] if world > 1 else pixels,
            device=self._device,
            autocast=self._autocast,
            batch_size=self.batch_size,
            quiet=self.quiet,
            desc=f"record step {step}" + ("" if image_set.run.image_set == EVAL else f" {image_set.run.image_set}"),
        )
        if world > 1:
            emb, probs = _gather(emb, probs, rank, world, n, self._device)
        if rank != 0:
            return
        if probs is not None and self._order is False:
            names = self._class_names or self._run_class_names()
            self._order = label_order(model.config, names, "the model being trained") if names else None
        if probs is not None and self._order is not None:
            probs = probs[:, self._order]
        write_snapshot(image_set.run, step, emb, probs)

    # --- Trainer events ------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._training, self._max_steps = True, state.max_steps
        if _world()[0] == 0:
            write_training_state(self.run, "training", step=state.global_step, max_steps=state.max_steps)
        if state.global_step == 0:
            self.record(0, model, 0.0)
        elif not self.run.embedding_path(state.global_step).is_file():
            # resumed from a checkpoint saved just before the process stopped, before on_save recorded it
            self.record(state.global_step, model, state.epoch)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if (self.every_steps and step % self.every_steps == 0) or step >= state.max_steps:
            self.record(step, model, state.epoch)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.every_epochs and round(state.epoch or 0) % self.every_epochs == 0:
            self.record(state.global_step, model, state.epoch)

    def on_save(self, args, state, control, model=None, **kwargs):
        self.record(state.global_step, model, state.epoch)

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False
        if _world()[0] == 0:
            write_training_state(self.run, "finished", step=state.global_step, max_steps=state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # log_history holds every log of this training, also those before a resume
        if self.write_log and state.is_world_process_zero:
            write_log(self.run, [log_row(h.get("step", 0), h.get("epoch"), h) for h in state.log_history])


class _Set:
    """One image set the recorder embeds: its run view and its pixels (or images to preprocess).

    Its listing (``eval.csv`` / ``train/train.csv`` and the images) is written when the run has
    none and ``labels`` and ``images`` are given; when it has one, what is given must match it.
    """

    def __init__(self, run: Run, pixels, images, labels, ids, prefix: str, writer: bool, recorder):
        self.run, self.pixels, self.images = run, pixels, images
        count = len(pixels) if pixels is not None else len(images)
        if recorder.overwrite and not writer:
            return  # process 0 writes the new listing
        if run.eval_csv.is_file():
            check_eval_set(run, count=count, ids=ids, labels=labels, class_names=recorder._class_names, images=images)
            return
        if labels is None or images is None or not writer:
            return
        labels = np.asarray(labels, dtype=np.int64)
        names = recorder._class_names or [str(k) for k in range(labels.max() + 1)]
        write_eval_set(
            run,
            ids=list(ids) if ids is not None else [f"{prefix}-{i:05d}" for i in range(len(labels))],
            labels=labels,
            images=images,
            class_names=names,
            quiet=recorder.quiet,
        )


# The collectives below run with async_op and their Work objects are kept until the next record
# (or exit), so the worker thread that ran one never drops the last reference to a tensor made in
# Python: dropping it takes the GIL, and a gloo worker that asks for the GIL while the interpreter
# exits is killed by std::terminate (SIGABRT after all the work is done; tests/test_recorder.py
# checks it). The cost: until the next record, process 0 keeps one gathered copy of the
# embeddings on the collectives' device.
_last_collectives: list = []


def _collective(work) -> None:
    work.wait()
    _last_collectives.append(work)


def _collective_device(embedding_device) -> torch.device:
    """Where the job's process group takes tensors: the CPU where its backend includes gloo or
    mpi ("gloo", "cpu:gloo,cuda:nccl"); else the GPU the model embeds on, or this process's
    current GPU for a model kept on the CPU (nccl takes GPU tensors only)."""
    import torch.distributed as dist

    backend = str(dist.get_backend())
    if "gloo" in backend or "mpi" in backend:
        return torch.device("cpu")
    device = torch.device(embedding_device)
    return device if device.type != "cpu" else torch.device("cuda", torch.cuda.current_device())


def _same_on_every_rank(pixels: torch.Tensor, device, set_name: str = "evaluation set") -> None:
    """Refuse a distributed job whose processes were given different images (of one set)."""
    import torch.distributed as dist

    rank, world = _world()
    if world == 1:
        return
    digest = bytes.fromhex(sha256_bytes(pixels.detach().float().cpu().numpy().tobytes()))
    mine = torch.tensor([len(pixels), *digest], dtype=torch.int64, device=_collective_device(device))
    everyone = [torch.empty_like(mine) for _ in range(world)]
    _collective(dist.all_gather(everyone, mine, async_op=True))
    everyone = [t.tolist() for t in everyone]
    differs = next((r for r in range(world) if everyone[r] != everyone[0]), None)
    if differs is not None:
        raise DataError(
            f"the processes of this distributed job were given different {set_name}s (process {differs}: "
            f"{everyone[differs][0]} images, process 0: {everyone[0][0]}); give every process the same images"
        )


def _gather(emb, probs, rank: int, world: int, n: int, device):
    """Process 0 gets every process's share, concatenated in evaluation order (the padding cut).

    Every share has the same shape (``_record`` pads the last), as ``dist.gather`` needs.
    """
    import torch.distributed as dist

    gathered = []
    for part in (emb, probs):  # probs is None on every process or on none (the same model)
        if part is None:
            gathered.append(None)
            continue
        mine = torch.from_numpy(np.ascontiguousarray(part)).to(_collective_device(device))
        shares = [torch.empty_like(mine) for _ in range(world)] if rank == 0 else None
        _collective(dist.gather(mine, shares, dst=0, async_op=True))
        gathered.append(torch.cat(shares).cpu().numpy()[:n] if rank == 0 else None)
    return tuple(gathered)
