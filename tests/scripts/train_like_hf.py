"""An image-classification training script written the way the transformers examples are
(``run_image_classification.py``): arguments parsed into ``TrainingArguments``, an
``imagefolder`` dataset, ``set_transform``, ``compute_metrics``, ``Trainer``; plus
``EmbeddingRecorder`` when ``--record_to`` is given. Used by tests/test_recorder.py.

Writes ``OUTPUT_DIR/outcome.json`` (the Trainer's own outputs: checkpoints, best checkpoint,
global step; the steps recorded) and the final model into ``OUTPUT_DIR/final``.
"""

import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import load_dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, ViTConfig, ViTForImageClassification
from transformers import ViTImageProcessorPil as Processor


@dataclass
class ScriptArguments:
    train_dir: str = field(metadata={"help": "imagefolder with train/ and validation/"})
    record_to: str | None = field(default=None, metadata={"help": "spotreview run directory"})
    every_steps: int | None = field(default=None)
    precision: str = field(default="fp32")
    record_train: bool = field(default=False, metadata={"help": "record the training images too"})


def main():
    script, training_args = HfArgumentParser((ScriptArguments, TrainingArguments)).parse_args_into_dataclasses()
    data = load_dataset("imagefolder", data_dir=script.train_dir)
    names = data["train"].features["label"].names
    processor = Processor(size={"height": 16, "width": 16})

    def transform(batch):
        batch["pixel_values"] = processor(images=[im.convert("RGB") for im in batch["image"]], return_tensors="pt")[
            "pixel_values"
        ]
        return batch

    eval_images, eval_labels = list(data["validation"]["image"]), list(data["validation"]["label"])
    train_images, train_labels = list(data["train"]["image"]), list(data["train"]["label"])
    data["train"].set_transform(transform)
    data["validation"].set_transform(transform)

    def collate(examples):
        return {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples]),
        }

    def compute_metrics(p):
        return {"accuracy": float((np.argmax(p.predictions, axis=1) == p.label_ids).mean())}

    torch.manual_seed(training_args.seed)
    config = ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model = ViTForImageClassification(config)
    callbacks = []
    if script.record_to:
        from spotreview import EmbeddingRecorder

        callbacks.append(
            EmbeddingRecorder(
                script.record_to,
                images=eval_images,
                processor=processor,
                labels=eval_labels,
                class_names=names,
                every_steps=script.every_steps,
                precision=script.precision,
                **({"train_images": train_images, "train_labels": train_labels} if script.record_train else {}),
            )
        )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=collate,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(os.path.join(training_args.output_dir, "final"))
    if trainer.is_world_process_zero():
        outcome = {
            "checkpoints": sorted(d for d in os.listdir(training_args.output_dir) if d.startswith("checkpoint-")),
            "best_model_checkpoint": trainer.state.best_model_checkpoint,
            "global_step": trainer.state.global_step,
            "recorded": callbacks[0].recorded if callbacks else None,
            "processes": callbacks[0].processes if callbacks else None,
            "fsdp": bool(trainer.is_fsdp_enabled),
        }
        with open(os.path.join(training_args.output_dir, "outcome.json"), "w") as f:
            json.dump(outcome, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
