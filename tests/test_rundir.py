"""The run-directory contract: paths, numeric snapshot order, atomic writes, one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spotreview.errors import RunDirError
from spotreview.rundir.atomic import atomic_path, save_npy, write_json, write_text
from spotreview.rundir.evalset import read_eval
from spotreview.rundir.run import Run


def test_snapshots_and_checkpoints_are_ordered_by_step_as_a_number(tmp_path):
    run = Run(tmp_path)
    for step in (100, 20, 3, 0):
        save_npy(run.embedding_path(step), np.zeros((2, 2), np.float32))
        save_npy(run.probs_path(step), np.zeros((2, 2), np.float32))
        run.checkpoint_path(step).mkdir()
    (tmp_path / "checkpoint-x").mkdir()  # not a step: ignored
    (run.embeddings_dir / "notes.npy").write_bytes(b"")

    assert run.snapshots() == [0, 3, 20, 100]
    assert [s for s, _ in run.checkpoints()] == [0, 3, 20, 100]
    assert [p.name for _, p in run.checkpoints()][-2:] == ["checkpoint-20", "checkpoint-100"]


def test_paths_follow_the_contract(tmp_path):
    run = Run(tmp_path / "r")
    assert run.embedding_path(7).relative_to(run.root).as_posix() == "embeddings/step-7.npy"
    assert run.probs_path(7).relative_to(run.root).as_posix() == "embeddings/step-7.probs.npy"
    assert run.image_path("test-00042").relative_to(run.root).as_posix() == "images/test-00042.png"
    assert run.checkpoint_path(20).name == "checkpoint-20"
    assert not run.root.exists()  # creating a Run touches nothing


def test_atomic_write_leaves_no_partial_file_on_exception(tmp_path):
    target = tmp_path / "embeddings" / "step-5.npy"
    save_npy(target, np.arange(3, dtype=np.float32))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("interrupted")
    # the finished file is untouched and no temporary file is left behind
    assert np.load(target).tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["step-5.npy"]

    fresh = tmp_path / "new.json"
    with pytest.raises(TypeError):
        with atomic_path(fresh) as tmp:
            tmp.write_text("{")
            raise TypeError("boom")
    assert not fresh.exists() and list(tmp_path.glob(".tmp-*")) == []


def test_save_npy_keeps_the_npy_suffix_and_writers_roundtrip(tmp_path):
    save_npy(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    write_json(tmp_path / "m.json", {"b": 1})
    write_text(tmp_path / "t.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json", "t.txt"]
    assert np.load(tmp_path / "a.npy").shape == (2, 3)


def test_missing_run_messages(tmp_path):
    run = Run(tmp_path / "nope")
    with pytest.raises(RunDirError) as e:
        run.require()
    assert str(e.value) == (
        f"run directory {run.root} does not exist; create one with `spotreview finetune --out {run.root}`"
    )
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(RunDirError) as e:
        Run(tmp_path / "empty").require_snapshots()
    assert str(e.value) == (
        f"{tmp_path / 'empty'} has no embeddings and no checkpoint-STEP folders to embed; "
        f"create the run with `spotreview finetune --out {tmp_path / 'empty'}`"
    )
    (tmp_path / "empty" / "checkpoint-10").mkdir()  # now `embed` can help
    with pytest.raises(RunDirError) as e:
        Run(tmp_path / "empty").require_snapshots()
    assert str(e.value) == f"{tmp_path / 'empty'} has no embeddings; run `spotreview embed {tmp_path / 'empty'}` first"
    with pytest.raises(RunDirError, match="manifest.json is missing; this is not a spotreview run"):
        Run(tmp_path / "empty").read_manifest()
    with pytest.raises(RunDirError, match="eval.csv is missing"):
        read_eval(Run(tmp_path / "empty"))


def test_synthetic_run_matches_the_contract(synthetic_run):
    table = read_eval(synthetic_run)
    assert list(table.columns) == ["id", "label", "class_name", "image"]
    assert synthetic_run.snapshots() == [0, 5, 10, 20, 100]
    n = len(table)
    for step in synthetic_run.snapshots():
        assert np.load(synthetic_run.embedding_path(step)).shape[0] == n
        assert np.load(synthetic_run.probs_path(step)).dtype == np.float32
    assert all((synthetic_run.root / p).is_file() for p in table["image"])


def test_temp_files_of_dead_processes_are_swept_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from spotreview.rundir import atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    folder = tmp_path / "embeddings"
    folder.mkdir()
    stale = folder / f".tmp-{pid}-0123abcd-step-5.npy"
    live = folder / ".tmp-1-89abcdef-step-6.npy"  # PID 1 is alive: maybe still writing
    other = folder / ".tmp-notes.txt"  # not our pattern
    for p in (stale, live, other):
        p.write_bytes(b"half")
    atomic._swept.discard(folder)
    save_npy(folder / "step-7.npy", np.zeros(2, np.float32))
    assert not stale.exists() and live.exists() and other.exists()


def test_paths_are_confined_to_the_run(tmp_path):
    run = Run(tmp_path / "run")
    (run.root / "images").mkdir(parents=True)
    (run.root / "images" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"s")
    (run.root / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    assert run.inside("images/a.png") == (run.root / "images" / "a.png").resolve()
    for rel in ("../secret.png", str(tmp_path / "secret.png"), "images/link.png", "images/../../secret.png"):
        with pytest.raises(RunDirError, match="outside the run"):
            run.inside(rel)
    assert run.image_path("a") == run.root / "images" / "a.png"
    for image_id in ("link", "../../secret"):  # what export draws as thumbnails
        with pytest.raises(RunDirError, match=f"image id '{re.escape(image_id)}' names .* outside the run"):
            run.image_path(image_id)


def test_the_run_lock_serialises_read_modify_write(tmp_path):
    import threading

    run = Run(tmp_path)
    order = []

    def hold():
        with run.lock():
            order.append("b")

    with run.lock():
        t = threading.Thread(target=hold)
        t.start()
        t.join(0.3)
        order.append("a")  # the other holder is still waiting
    t.join(5)
    assert order == ["a", "b"]
