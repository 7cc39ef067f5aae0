"""Fine-tuning end to end (tiny), the in-training recorder, and finetune's bad-input messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error, tiny_vit, vit_processor
from PIL import Image

from spotreview.cli import cli
from spotreview.errors import ModelError, RunDirError
from spotreview.rundir.evalset import read_eval
from spotreview.rundir.run import Run
from spotreview.training.finetune import finetune
from spotreview.training.recorder import EmbeddingRecorder

# 1438 digits / 64 per batch = 23 steps per epoch; 0.25 epochs = 6 steps; a save every 2.
TINY = dict(eval_size=30, epochs=0.25, batch_size=64, save_steps=2, quiet=True)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Three classes of seeded images in mixed modes and sizes, one sub-folder per class."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(1)
    for k in range(18):
        folder = root / ("abc"[k % 3])
        folder.mkdir(exist_ok=True)
        im = Image.fromarray(rng.integers(0, 255, (10 + k, 14 - k % 5, 3), dtype=np.uint8))
        im = [im, im.convert("L"), im.convert("RGBA"), im.convert("P"), im.convert("1")][k % 5]
        im.save(folder / f"{k:02d}.png")
    return root


def test_finetune_digits_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        [
            "finetune",
            "--out",
            str(out),
            "--eval-size",
            "30",
            "--epochs",
            "0.25",
            "--batch-size",
            "64",
            "--save-steps",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    run = Run(out)
    assert run.snapshots() == [0, 2, 4, 6]  # step 0 = before fine-tuning; 6 = the last step
    assert run.checkpoints() == []  # recorded in training, no checkpoint kept
    assert "4 snapshots (steps 0..6) of 30 eval images" in result.output
    assert f"Next: spotreview analyze {out}" in result.output

    table = read_eval(run)
    assert list(table.columns) == ["id", "label", "class_name", "image"] and len(table) == 30
    assert np.bincount(table["label"]).tolist() == [3] * 10
    assert all((out / p).is_file() for p in table["image"])
    assert Image.open(out / table["image"][0]).size == (32, 32)
    for step in run.snapshots():
        emb, probs = np.load(run.embedding_path(step)), np.load(run.probs_path(step))
        assert emb.shape == (30, 64) and emb.dtype == np.float32 and np.isfinite(emb).all()
        assert probs.shape == (30, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert not np.allclose(np.load(run.embedding_path(0)), np.load(run.embedding_path(6)))

    m = run.read_manifest()
    assert m["finished"] is True and m["snapshots"] == [0, 2, 4, 6]
    assert m["dataset"] == "digits" and m["class_names"] == [str(d) for d in range(10)]
    assert m["num_images"] == 30 and m["seed"] == 0
    assert m["parameters"]["save_steps"] == 2 and m["parameters"]["learning_rate"] == 1e-3
    assert set(m["versions"]) == {"spotreview", "torch", "transformers"}
    assert (run.processor_dir / "preprocessor_config.json").is_file()

    log = pd.read_csv(run.log_csv)
    assert list(log.columns[:4]) == [
        "step",
        "epoch",
        "loss",
        "learning_rate",
    ]  # log.csv's own order (traininglog.log_row)
    assert log["step"].tolist()[:6] == [1, 2, 3, 4, 5, 6]  # logging_steps = save_steps // 2
    assert log["loss"].iloc[:6].notna().all()
    # lr 1e-3 with warmup_steps=0.1 read as a ratio (transformers 5): ceil(0.6) = 1 warmup
    # step, then linear decay to 0 at step 6.
    np.testing.assert_allclose(log["learning_rate"].iloc[:6], [0, 1e-3, 8e-4, 6e-4, 4e-4, 2e-4], atol=1e-9)
    assert log["step"].is_monotonic_increasing and log["step"].iloc[-1] == 6  # every log, to the last step
    assert np.allclose(log["epoch"].iloc[:6], np.arange(1, 7) / 23)  # 23 steps per epoch (1438 / 64)
    assert all(pd.api.types.is_numeric_dtype(t) for t in log.dtypes)  # only numbers are kept


def test_kept_checkpoints_embed_post_hoc_to_the_recorded_vectors(tmp_path):
    """Through the package API, as a user would: spotreview.finetune, then spotreview.embed."""
    import spotreview

    done = spotreview.finetune(tmp_path / "r", keep_checkpoints=True, **TINY)
    run = done.run
    assert isinstance(done, spotreview.Finetuned) and done.checkpoints == 4
    assert [s for s, _ in run.checkpoints()] == [0, 2, 4, 6]  # checkpoint-0: the model before fine-tuning
    recorded = {s: np.load(run.embedding_path(s)) for s in (0, 2, 4, 6)}
    for s in (0, 2, 4, 6):
        run.embedding_path(s).unlink()
    assert spotreview.embed(run, quiet=True).steps == [0, 2, 4, 6]  # processor from the run's processor/ dir
    assert spotreview.EmbeddingRecorder is EmbeddingRecorder
    for s in (0, 2, 4, 6):  # bf16 weights post hoc vs bf16 autocast in training: 1e-2 cosine (issue 12)
        post_hoc = np.load(run.embedding_path(s))
        cosine = (
            (post_hoc * recorded[s]).sum(1) / np.linalg.norm(post_hoc, axis=1) / np.linalg.norm(recorded[s], axis=1)
        )
        assert cosine.min() >= 1 - 1e-2, (s, cosine.min())


def test_recorder_in_a_plain_trainer_script(tmp_path):
    """EmbeddingRecorder with anyone's Trainer: step 0, every save, the last step; the Trainer's
    own checkpoints are left as they are; snapshots.csv has each snapshot's epoch, log.csv the logs."""
    from transformers import Trainer, TrainingArguments

    model = tiny_vit(0, num_labels=2, intermediate_size=16)
    processor = vit_processor()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(8)]
    labels = [0, 1] * 4
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    train = [{"pixel_values": pixels[i], "labels": labels[i]} for i in range(8)]

    recorder = EmbeddingRecorder(tmp_path, images=images, processor=processor, labels=labels, class_names=["no", "yes"])
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=5,
        save_strategy="steps",
        save_steps=2,
        per_device_train_batch_size=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    Trainer(model=model, args=args, train_dataset=train, callbacks=[recorder]).train()

    run = Run(tmp_path)
    assert recorder.recorded == [0, 2, 4, 5] and run.snapshots() == [0, 2, 4, 5]
    assert [s for s, _ in run.checkpoints()] == [2, 4, 5]  # the Trainer saves as it would without it
    snapshots = pd.read_csv(run.snapshots_csv)
    assert snapshots["step"].tolist() == [0, 2, 4, 5] and snapshots["epoch"].tolist() == [0, 1, 2, 2.5]
    assert pd.read_csv(run.log_csv)["step"].tolist() == [5]  # the Trainer's one log: the summary at the end
    assert read_eval(run)["class_name"].tolist() == ["no", "yes"] * 4
    assert np.load(run.embedding_path(5)).shape == (8, 16)


def test_finetune_a_local_model_on_an_image_folder_of_mixed_images(tmp_path, mixed_folder):
    """--model DIR (a new head is attached) and images of mixed sizes and modes (converted)."""
    tiny_vit(0, num_labels=5, intermediate_size=16).save_pretrained(tmp_path / "base")
    vit_processor().save_pretrained(tmp_path / "base")

    run = finetune(
        tmp_path / "r",
        model=str(tmp_path / "base"),
        dataset=str(mixed_folder),
        epochs=2,
        batch_size=4,
        save_steps=3,
        quiet=True,
    ).run
    m = run.read_manifest()
    assert m["class_names"] == ["a", "b", "c"] and m["parameters"]["learning_rate"] == 5e-5
    assert run.snapshots()[0] == 0 and run.snapshots()[-1] == m["parameters"]["max_steps"]
    assert np.load(run.probs_path(0)).shape == (m["num_images"], 3)


def test_existing_run_is_refused_and_replaced_only_with_overwrite(tmp_path, synthetic_run):
    root = synthetic_run.root
    result = CliRunner().invoke(cli, ["finetune", "--out", str(root), "-q"])
    assert cli_error(result) == (
        f"Error: {root} already holds a run with 5 snapshots; choose another --out, or pass --overwrite to replace it"
    )
    assert synthetic_run.snapshots() == [0, 5, 10, 20, 100]

    # a bad argument with --overwrite fails before anything is removed
    result = CliRunner().invoke(cli, ["finetune", "--out", str(root), "--eval-size", "9999", "--overwrite", "-q"])
    assert result.exit_code == 1 and synthetic_run.snapshots() == [0, 5, 10, 20, 100]

    run = finetune(root, overwrite=True, **TINY).run
    assert run.snapshots() == [0, 2, 4, 6] and not run.exclusions.exists()

    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError) as e:
        finetune(other, overwrite=True, **TINY)
    assert str(e.value) == f"{other} exists, is not empty and is not a spotreview run; choose another --out"
    assert (other / "thesis.tex").read_text() == "precious"


def finetune_error(*args) -> str:
    return cli_error(CliRunner().invoke(cli, ["finetune", *map(str, args), "-q"]))


def test_model_that_is_not_an_image_model(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path / "bert")
    assert finetune_error("--out", tmp_path / "r", "--model", tmp_path / "bert", "--eval-size", "11") == (
        f"Error: {tmp_path / 'bert'} is a bert model, not an image-classification model; give an image model "
        "such as google/vit-base-patch16-224-in21k, or leave --model out for the built-in small ViT"
    )
    (tmp_path / "empty").mkdir()
    assert finetune_error("--out", tmp_path / "r", "--model", tmp_path / "empty") == (
        f"Error: {tmp_path / 'empty'} has no config.json; expected a model directory written by save_pretrained"
    )
    assert not (tmp_path / "r").exists()


def test_unknown_model_while_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelError) as e:
        finetune(tmp_path / "r", model="nobody/no-such-model", **TINY)
    assert str(e.value) == (
        "model 'nobody/no-such-model' is not a local directory and could not be loaded from the hub "
        "(127.0.0.1 cannot be reached; set HF_HUB_OFFLINE=1 to use the local cache); "
        "give a save_pretrained directory, or leave --model out for the built-in small ViT"
    )


def test_dataset_errors_reach_the_cli_as_one_line(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [Image.new("RGB", (4, 4))] * 4}).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "nolabels"))
    assert finetune_error("--out", tmp_path / "r", "--dataset", tmp_path / "nolabels") == (
        f"Error: dataset '{tmp_path / 'nolabels'}' has no label column (columns: image); expected a ClassLabel "
        "column or one named 'label' or 'labels' (an image folder needs one sub-folder per class)"
    )
    assert finetune_error("--out", tmp_path / "r", "--eval-size", "400") == (
        "Error: eval size 400 is larger than the evaluation data (359 images in digits); use --eval-size 359 or less"
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_finetune_resumes_after_kill_9(tmp_path):
    """kill -9 after a checkpoint, then the same command again: it resumes from the rolling checkpoint
    and ends with every snapshot of both image sets; status/approve/export meanwhile say the run
    is unfinished."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    args = ["finetune", "--eval-size", "30", "--epochs", "1", "--batch-size", "64", "--save-steps", "4", "-q"]
    args += ["--record-train", "50"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotreview", *args, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint-8" / "trainer_state.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = Run(out)
    assert run.read_manifest()["finished"] is False and 4 in run.snapshots() and 20 not in run.snapshots()
    result = CliRunner().invoke(cli, ["status", str(out)])
    assert "training:    unfinished; re-run the same `spotreview finetune` command to resume it" in result.output

    other = CliRunner().invoke(cli, [*args, "--out", str(out), "--epochs", "2"])
    assert cli_error(other) == (
        f"Error: {out} holds an unfinished run made with other settings (epochs 1.0, now 2.0); "
        "repeat its command to resume it, or pass --overwrite to replace it"
    )
    again = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert run.snapshots() == [0, 4, 8, 12, 16, 20, 23] and run.checkpoints() == []
    assert run.read_manifest()["finished"] is True
    log = pd.read_csv(run.log_csv)
    assert log.dropna(subset=["loss"])["step"].tolist() == list(range(2, 24, 2))  # the whole loss curve

    whole = finetune(
        tmp_path / "whole", eval_size=30, epochs=1, batch_size=64, save_steps=4, record_train=50, quiet=True
    ).run
    assert whole.snapshots() == run.snapshots() == run.for_set("train").snapshots()
    for step in whole.snapshots():  # byte-identical to the uninterrupted run, both sets
        for image_set in ("eval", "train"):
            a, b = whole.for_set(image_set), run.for_set(image_set)
            assert a.embedding_path(step).read_bytes() == b.embedding_path(step).read_bytes(), (step, image_set)


def test_recorder_refuses_another_eval_set_unless_overwrite(tmp_path):
    """One evaluation set per run: other labels or pixels are refused (nothing touched), overwrite starts afresh."""
    processor = vit_processor()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(6)]
    given = dict(processor=processor, class_names=["no", "yes"])
    EmbeddingRecorder(tmp_path, images=images, labels=[0, 1] * 3, **given).record(0, tiny_vit(0, num_labels=2))
    run = Run(tmp_path)
    before = run.eval_csv.read_bytes(), run.embedding_path(0).read_bytes()
    EmbeddingRecorder(tmp_path, images=images, labels=[0, 1] * 3, **given)  # the same set: fine
    fix = "give the run's own images, or start a new run (overwrite=True / --overwrite, or another folder)"
    with pytest.raises(RunDirError) as e:
        EmbeddingRecorder(tmp_path, images=images[:5], labels=[0, 1, 0, 1, 0], **given)
    assert str(e.value) == f"{tmp_path} holds another evaluation set (eval.csv): 5 images given, eval.csv has 6; {fix}"
    with pytest.raises(RunDirError) as e:
        EmbeddingRecorder(tmp_path, images=images, labels=[0, 1, 1, 1, 0, 1], **given)
    assert str(e.value) == (
        f"{tmp_path} holds another evaluation set (eval.csv): the label of row 2 (eval-00002) is 1, "
        f"eval.csv has 0; {fix}"
    )
    with pytest.raises(RunDirError) as e:
        EmbeddingRecorder(tmp_path, images=images[::-1], labels=[0, 1] * 3, **given)  # same labels, other pixels
    assert str(e.value) == (
        f"{tmp_path} holds another evaluation set (eval.csv): image 0 (eval-00000) differs from "
        f"images/eval-00000.png; {fix}"
    )
    assert (run.eval_csv.read_bytes(), run.embedding_path(0).read_bytes()) == before  # nothing lost
    EmbeddingRecorder(tmp_path, images=images[:5], labels=[0, 1, 0, 1, 0], overwrite=True, **given)
    assert len(read_eval(run)) == 5 and run.snapshots() == []


def test_approve_and_export_warn_about_an_unfinished_run(analysed_run, caplog):
    from spotreview.rendering.export import export
    from spotreview.reviewing.approval import approve
    from spotreview.rundir.atomic import write_json

    write_json(analysed_run.manifest, {**analysed_run.read_manifest(), "finished": False})
    with caplog.at_level("WARNING", logger="spotreview"):
        approve(analysed_run, by="ana")
        export(analysed_run, still=analysed_run.root / "still.png", quiet=True)
    warned = [r.getMessage() for r in caplog.records if "has not finished" in r.getMessage()]
    assert warned == [
        f"{doing} {analysed_run.root} although its training has not finished; re-run the same "
        "`spotreview finetune` command to resume it"
        for doing in ("approving", "exporting")
    ]
