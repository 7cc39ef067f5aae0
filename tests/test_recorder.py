"""EmbeddingRecorder inside a real training script (tests/scripts/train_like_hf.py, written like the
transformers examples), run as a subprocess: the snapshots recorded for every save strategy, and
the Trainer's own outputs (checkpoints, best checkpoint, final weights) unchanged by the recorder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spotreview.rundir.evalset import read_eval
from spotreview.rundir.run import Run

SCRIPT = Path(__file__).parent / "scripts" / "train_like_hf.py"
ROOT = Path(__file__).parent.parent
# 24 training images, batch 4: 6 steps per epoch, 2 epochs = 12 steps
COMMON = [
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "4",
    "--per_device_eval_batch_size",
    "12",
    "--learning_rate",
    "5e-3",
    "--seed",
    "3",
    "--report_to",
    "none",
    "--use_cpu",
    "true",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "3",
    "--remove_unused_columns",
    "false",
]
BEST = ["--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy"]
CASES = {
    "steps": ["--save_strategy", "steps", "--save_steps", "4"],
    "steps-best-limit": [
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "4",
        "--save_total_limit",
        "1",
        *BEST,
    ],
    "epoch": ["--save_strategy", "epoch", "--eval_strategy", "epoch"],
    "epoch-best": ["--save_strategy", "epoch", "--eval_strategy", "epoch", *BEST],
    "best": [
        "--save_strategy",
        "best",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
        "--metric_for_best_model",
        "accuracy",
    ],
    "best-best": ["--save_strategy", "best", "--eval_strategy", "steps", "--eval_steps", "2", *BEST],
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """train/ (8 per class) and validation/ (4 per class) of three noisy colours."""
    root = tmp_path_factory.mktemp("hf-folder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("validation", 4)):
        for k, name in enumerate(("red", "green", "blue")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(60, 40, (16, 16, 3)) + 120 * np.eye(3)[k], 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def train(folder: Path, out: Path, args: list[str], record_to: Path | None = None, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        str(SCRIPT),
        "--train_dir",
        str(folder),
        "--output_dir",
        str(out),
        *COMMON,
        *args,
        *(["--record_to", str(record_to)] if record_to else []),
        *extra,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads((out / "outcome.json").read_text())
    outcome.pop("processes"), outcome.pop("fsdp")
    if outcome["best_model_checkpoint"]:
        outcome["best_model_checkpoint"] = Path(outcome["best_model_checkpoint"]).name
    return outcome


def weights(path: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[] if c == "epoch-best" else pytest.mark.slow) for c in CASES],
)
def test_recorder_records_every_save_and_leaves_the_trainer_as_it_is(folder, tmp_path, case):
    plain = train(folder, tmp_path / "plain", CASES[case])
    recorded = train(folder, tmp_path / "with", CASES[case], tmp_path / "run")
    saved = {int(c.split("-")[1]) for c in recorded["checkpoints"]}  # every save, where none is rotated away
    expected = [0, 4, 8, 12] if "limit" in case else sorted({0, recorded["global_step"]} | saved)
    assert recorded.pop("recorded") == expected
    plain.pop("recorded")
    assert recorded == plain  # the same checkpoints, best checkpoint and steps
    for name in [*plain["checkpoints"], "final"]:  # the same weights at every kept checkpoint and at the end
        assert_same_weights(tmp_path / "plain" / name, tmp_path / "with" / name)

    run = Run(tmp_path / "run")
    steps = run.snapshots()
    assert steps[0] == 0 and steps[-1] == 12
    snapshots = pd.read_csv(run.snapshots_csv)
    assert snapshots["step"].tolist() == steps
    np.testing.assert_allclose(snapshots["epoch"], np.array(steps) / 6)  # 6 steps per epoch
    log = pd.read_csv(run.log_csv)
    assert {3, 6, 9, 12} <= set(log["step"]) and log["loss"].notna().sum() == 4
    assert len(read_eval(run)) == 12 and np.load(run.embedding_path(12)).shape == (12, 16)
    if case == "epoch-best":
        assert steps == [0, 6, 12] and plain["best_model_checkpoint"] in ("checkpoint-6", "checkpoint-12")


@pytest.mark.slow
def test_save_total_limit_and_every_steps(folder, tmp_path):
    """Own cadence (every 2 steps) while the Trainer keeps one checkpoint of its saves every 4."""
    args = [*CASES["steps"], "--save_total_limit", "1"]
    plain = train(folder, tmp_path / "plain", args)
    recorded = train(folder, tmp_path / "with", args, tmp_path / "run", "--every_steps", "2")
    assert recorded.pop("recorded") == [0, 2, 4, 6, 8, 10, 12] and Run(tmp_path / "run").snapshots() == [
        0,
        2,
        4,
        6,
        8,
        10,
        12,
    ]
    plain.pop("recorded")
    assert recorded == plain and plain["checkpoints"] == ["checkpoint-12"]
    assert_same_weights(tmp_path / "plain" / "final", tmp_path / "with" / "final")


@pytest.mark.slow
def test_resume_from_checkpoint_with_the_recorder(folder, tmp_path):
    """resume_from_checkpoint gives the same weights with the recorder as without it; the snapshot
    of the checkpoint resumed from is recorded when the run lacks it, and every later save.
    (transformers 5.24's own resume does not reload ViT weights saved under their legacy names, so
    here it is not equal to an uninterrupted run; finetune works around it, see training/trainer.py: _Trainer.)"""
    train(folder, tmp_path / "whole", CASES["steps"])
    for name in ("plain", "with"):
        (tmp_path / name).mkdir()
        shutil.copytree(tmp_path / "whole" / "checkpoint-4", tmp_path / name / "checkpoint-4")
    resume = ["--resume_from_checkpoint", "checkpoint-4"]
    plain = train(folder, tmp_path / "plain", CASES["steps"], None, *resume[:1], str(tmp_path / "plain" / resume[1]))
    recorded = train(
        folder, tmp_path / "with", CASES["steps"], tmp_path / "run", *resume[:1], str(tmp_path / "with" / resume[1])
    )
    assert recorded.pop("recorded") == [4, 8, 12] and Run(tmp_path / "run").snapshots() == [4, 8, 12]
    plain.pop("recorded")
    assert recorded == plain
    for name in [*plain["checkpoints"], "final"]:
        assert_same_weights(tmp_path / "plain" / name, tmp_path / "with" / name)


LAUNCHERS = {
    "torchrun": (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
    "accelerate": (
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ),
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ddp_on_two_cpu_processes_records_what_one_process_embeds(folder, tmp_path, launcher):
    """torchrun --nproc_per_node 2, or accelerate launch --multi_gpu --num_processes 2 (accelerate's
    launcher for several processes; `--cpu` would start one), gloo on the CPU as the script asks:
    each process embeds half of the evaluation set, process 0 gathers them in evaluation order and
    writes; equal to a single-process embed of the same weights."""
    from spotreview.embedding.embed import embed

    odd = tmp_path / "folder"  # 11 evaluation images: 6 + 5, the second share padded
    shutil.copytree(folder, odd)
    (odd / "validation" / "blue" / "3.png").unlink()
    folder = odd
    launch = LAUNCHERS[launcher]
    args = [*CASES["steps"], "--ddp_backend", "gloo", "--per_device_train_batch_size", "2", "--record_train", "true"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        *launch,
        str(SCRIPT),
        "--train_dir",
        str(folder),
        "--output_dir",
        str(tmp_path / "out"),
        *COMMON,
        *args,
        "--record_to",
        str(tmp_path / "run"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads((tmp_path / "out" / "outcome.json").read_text())
    assert outcome["processes"] == 2 and outcome["recorded"] == [0, 4, 8, 12]
    run = Run(tmp_path / "run")
    assert run.snapshots() == [0, 4, 8, 12] and len(read_eval(run)) == 11
    train = run.for_set("train")  # the 24 training images, recorded as the training set
    assert len(read_eval(train)) == 24 and train.snapshots() == [0, 4, 8, 12]
    written = sorted(p.relative_to(run.root).as_posix() for p in run.root.rglob("*") if p.is_file())
    assert [p for p in written if "images/" not in p] == [  # one of each, no stray temporary files
        *(f"embeddings/step-{s}{x}" for s in (0, 12, 4, 8) for x in (".npy", ".probs.npy")),
        "eval.csv",
        "log.csv",
        "snapshots.csv",
        *(f"train/embeddings/step-{s}{x}" for s in (0, 12, 4, 8) for x in (".npy", ".probs.npy")),
        "train/train.csv",
        "training.json",
    ]

    from conftest import vit_processor  # the script's processor

    single = Run(tmp_path / "single")  # embed the kept checkpoints in one process, into another run
    shutil.copytree(run.images_dir, single.images_dir)
    shutil.copy(run.eval_csv, single.eval_csv)
    shutil.copytree(train.images_dir, single.for_set("train").images_dir)
    shutil.copy(train.eval_csv, single.for_set("train").eval_csv)
    for step in (4, 8, 12):
        shutil.copytree(tmp_path / "out" / f"checkpoint-{step}", single.checkpoint_path(step))
    vit_processor().save_pretrained(tmp_path / "processor")
    assert embed(single, processor=tmp_path / "processor", precision="fp32", quiet=True).steps == [4, 8, 12]
    for step in (4, 8, 12):  # both sets: embed also embeds a run's training set
        for view in (run, train):
            alone = single.for_set(view.image_set)
            np.testing.assert_allclose(
                np.load(view.embedding_path(step)), np.load(alone.embedding_path(step)), atol=1e-4
            )
            np.testing.assert_allclose(np.load(view.probs_path(step)), np.load(alone.probs_path(step)), atol=1e-4)


def _rank_with_its_own_eval_set(rank: int, port: int, errors) -> None:
    import torch
    import torch.distributed as dist
    from conftest import tiny_vit

    from spotreview.errors import DataError
    from spotreview.training.recorder import EmbeddingRecorder

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        pixels = torch.full((4 + rank, 3, 16, 16), 0.5)  # process 1 was given one image more
        recorder = EmbeddingRecorder(Path(errors).parent / "run", pixel_values=pixels)
        try:
            recorder.record(0, tiny_vit(0))
        except DataError as e:
            Path(errors, f"rank{rank}").write_text(str(e))
    finally:
        # Both processes leave together: a gloo peer torn down while the other still
        # tears down can abort it ("terminate called without an active exception").
        dist.barrier()
        dist.destroy_process_group()


def test_ddp_processes_given_different_eval_sets_are_refused(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "errors").mkdir()
    mp.spawn(_rank_with_its_own_eval_set, args=(port, str(tmp_path / "errors")), nprocs=2)
    expected = (
        "the processes of this distributed job were given different evaluation sets (process 1: 5 images, "
        "process 0: 4); give every process the same images"
    )
    assert [(tmp_path / "errors" / f"rank{r}").read_text() for r in (0, 1)] == [expected, expected]
    assert not (tmp_path / "run").exists()  # nothing written


EXIT_RIGHT_AFTER_GATHERING = """
import numpy as np, torch, torch.distributed as dist
from spotreview.training.recorder import _gather, _same_on_every_rank
dist.init_process_group("gloo")
rank, cpu = dist.get_rank(), torch.device("cpu")
_same_on_every_rank(torch.full((5, 3, 4, 4), 0.5), cpu)
emb, probs = _gather(np.full((6, 4), rank, np.float32), np.zeros((6, 3), np.float32), rank, 2, 11, cpu)
if rank == 0:  # evaluation order, the second share's padding row cut
    assert emb.shape == (11, 4) and probs.shape == (11, 3) and (emb[:, 0] == [0] * 6 + [1] * 5).all(), emb
"""


@pytest.mark.slow
def test_processes_that_exit_right_after_the_gather_exit_cleanly(tmp_path):
    """The last record comes at the last training step, so a process may exit right after the gather.

    With the recorder's old ``all_gather_object`` + ``gather_object``, 9 of 30 such two-process jobs
    aborted at exit ("terminate called without an active exception": a gloo worker thread dropping
    the last reference to a Python tensor asks for the GIL while the interpreter exits). With those
    odds 12 clean jobs in a row happen 1 time in 70; the recorder now keeps its collectives' Work
    objects (0 of 30 aborted).
    """
    script = tmp_path / "exit_after_gather.py"
    script.write_text(EXIT_RIGHT_AFTER_GATHERING)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in range(12):
        done = subprocess.run(
            [*LAUNCHERS["torchrun"], str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and "terminate called" not in done.stderr, (attempt, done.stderr[-2000:])
