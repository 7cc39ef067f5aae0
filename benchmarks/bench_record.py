"""Recording benchmark: what the in-training recorder costs.

* per snapshot: ``EmbeddingRecorder.record`` with the live model against ``spotreview embed``
  of the same snapshot saved as a checkpoint (loading, preprocessing, forward, writing), on
  the demo's data and model (digits, 359 evaluation images, the built-in small ViT). The
  recorder preprocesses the evaluation images once per training; that one-time cost is
  reported on its own row. Goal: recording <= 1.1x the embed of the same snapshot.
* what recording a training set adds: a snapshot of the evaluation set alone against one of the
  evaluation set and the 500 training images `make demo` records (`--record-train 500`).
* the share of a demo fine-tune's time spent recording (the demo's settings).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path


def run(quick: bool = False) -> list[dict]:
    import spotreview
    from spotreview.defaults import EPOCHS, SAVE_STEPS
    from spotreview.embedding.models import small_vit
    from spotreview.embedding.sources import load_images
    from spotreview.rundir.run import Run
    from spotreview.training.recorder import EmbeddingRecorder

    rows = []
    images = load_images("digits", seed=0, quiet=True)
    n = len(images.eval_ids)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net, processor = small_vit(images.class_names)
        run = Run(tmp / "embedded")
        net.save_pretrained(run.checkpoint_path(1))
        processor.save_pretrained(run.checkpoint_path(1))
        spotreview.embed(run, dataset="digits", quiet=True)  # writes the eval set once

        recorder = EmbeddingRecorder(
            tmp / "recorded",
            images=images.eval_images,
            processor=processor,
            labels=images.eval_labels,
            class_names=images.class_names,
        )
        recorder.record(0, net)  # the first snapshot also preprocesses the evaluation images
        first_s = recorder.seconds

        repeats = 2 if quick else 5
        record_s = embed_s = 0.0
        for way in ("record", "embed", "embed", "record") * repeats:  # A B B A: this VM's speed drifts
            started = time.perf_counter()
            if way == "record":
                recorder.recorded.clear()
                recorder.record(1, net)
                record_s += time.perf_counter() - started
            else:
                shutil.rmtree(run.embeddings_dir)
                spotreview.embed(run, quiet=True)
                embed_s += time.perf_counter() - started
        per = 2 * repeats
        ratio = (record_s / per) / (embed_s / per)
        rows.append(
            dict(
                benchmark="record",
                measure=f"s/snapshot, recorder vs embed, {n} images, small ViT",
                value=record_s / per,
                unit="s",
                baseline=embed_s / per,
                ratio=ratio,
                target="<= 1.1x",
                met=ratio <= 1.1,
                note="baseline: spotreview embed of the same snapshot (load + preprocess + forward + write)",
            )
        )
        rows.append(
            dict(
                benchmark="record",
                measure="first snapshot of a training (preprocesses the eval set)",
                value=first_s,
                unit="s",
                note="once per training",
            )
        )

        rows.append(_training_set_cost(images, net, processor, tmp, repeats))

        epochs = 1 if quick else EPOCHS  # the demo's own settings
        done = spotreview.finetune(tmp / "demo", epochs=epochs, quiet=True)
        manifest = done.run.read_manifest()
        share = manifest["record_seconds"] / manifest["seconds"]
        rows.append(
            dict(
                benchmark="record",
                measure=f"share of a demo fine-tune spent recording ({epochs} epochs, "
                f"save every {SAVE_STEPS} steps, {len(done.snapshots)} snapshots)",
                value=share,
                unit="of training",
                note=f"{done.run.read_manifest()['record_seconds']} s of {manifest['seconds']} s",
            )
        )
    return rows


def _training_set_cost(images, net, processor, tmp: Path, repeats: int) -> dict:
    """Seconds per snapshot with 500 training images recorded too, against the evaluation set alone."""
    from spotreview.training.recorder import EmbeddingRecorder

    train = images.train_sample(500)
    common = dict(processor=processor, class_names=images.class_names)
    alone = EmbeddingRecorder(tmp / "eval-only", images=images.eval_images, labels=images.eval_labels, **common)
    both = EmbeddingRecorder(
        tmp / "with-train",
        images=images.eval_images,
        labels=images.eval_labels,
        train_images=[images.train_images[int(i)] for i in train],
        train_labels=images.train_labels[train],
        **common,
    )
    seconds = {}
    for recorder in (alone, both):  # the first snapshot preprocesses the images: not counted
        recorder.record(0, net)
    for recorder in (alone, both, both, alone) * repeats:  # A B B A: this VM's speed drifts
        recorder.recorded.clear()
        started = time.perf_counter()
        recorder.record(1, net)
        seconds[id(recorder)] = seconds.get(id(recorder), 0.0) + time.perf_counter() - started
    per = 2 * repeats
    value, baseline = seconds[id(both)] / per, seconds[id(alone)] / per
    n = len(images.eval_ids)
    return dict(
        benchmark="record",
        measure=f"s/snapshot with 500 training images recorded too ({n} + 500 images), small ViT",
        value=value,
        unit="s",
        baseline=baseline,
        ratio=value / baseline,
        note=f"baseline: the {n} evaluation images alone; images in proportion: {(n + 500) / n:.2f}x",
    )
