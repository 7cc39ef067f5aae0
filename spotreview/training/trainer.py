"""The Trainer :func:`spotreview.training.finetune.finetune` trains with: its arguments, the
training images as a dataset, the collator, and a resume that loads ViT checkpoints right."""

from __future__ import annotations

from spotreview.embedding.models import transformers_bars
from spotreview.rundir.run import Run


def build_trainer(run: Run, net, processor, images, recorder, command: dict, *, lr: float, dev, quiet: bool):
    """The Trainer for ``finetune``'s ``command`` (its settings), with ``recorder`` among its callbacks."""
    import torch
    from transformers import TrainingArguments

    save_steps, keep_checkpoints, seed = command["save_steps"], command["keep_checkpoints"], command["seed"]
    args = TrainingArguments(
        output_dir=str(run.root),
        num_train_epochs=command["epochs"],
        per_device_train_batch_size=command["batch_size"],
        learning_rate=lr,
        warmup_steps=0.1,  # a ratio of the total steps
        weight_decay=0.01,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=None if keep_checkpoints else 1,  # one rolling checkpoint to resume from
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
    trainer = _Trainer(
        model=net,
        args=args,
        train_dataset=_TrainSet(images.train_images, images.train_labels),
        data_collator=_Collate(processor),
        processing_class=processor,  # saved into kept checkpoints, so `embed` finds it there too
        callbacks=[recorder],
    )
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    return trainer


def _Trainer(**kwargs):
    """A ``Trainer`` whose resume loads the checkpoint's weights with ``from_pretrained``.

    The Trainer's own ``_load_from_checkpoint`` reads ``model.safetensors`` with a plain
    ``load_state_dict``; ``save_pretrained`` writes ViT weights under their legacy names
    (``vit.encoder.layer.0...``) while the model's own are ``vit.layers.0...``, so a resumed ViT
    would silently keep its initial weights. ``from_pretrained`` converts the names.
    """
    from transformers import Trainer

    class ResumingTrainer(Trainer):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            model = model or self.model
            with transformers_bars(False):
                saved = type(model).from_pretrained(resume_from_checkpoint)
            model.load_state_dict(saved.state_dict())

    return ResumingTrainer(**kwargs)


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

        from spotreview.rundir.evalset import to_rgb

        pixels = self.processor(images=[to_rgb(b["image"]) for b in batch], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": torch.tensor([b["label"] for b in batch], dtype=torch.long)}
