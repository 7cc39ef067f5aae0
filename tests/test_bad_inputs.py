"""Every malformed run file or argument: exit != 0, exactly one ``Error:`` line, no
traceback, and nothing in the run changed (every file hashed before and after).

One table: each case damages a fresh copy of an analysed, approved synthetic run, then
runs one command through the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error

from spotreview.cli import cli
from spotreview.reviewing.approval import approve
from spotreview.rundir.run import Run


@pytest.fixture(scope="session")
def _approved_template(_analysed_template, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("approved") / "run"
    shutil.copytree(_analysed_template.root, root)
    approve(root, by="test")
    return Run(root)


def _text(name: str, text: str):
    return lambda run: (run.root / name).write_text(text)


def _bytes(name: str, data: bytes):
    return lambda run: (run.root / name).write_bytes(data)


def _append(name: str, text: str):
    return lambda run: (run.root / name).write_text((run.root / name).read_text() + text)


def _csv(path_of, change):
    """Damage a CSV file of the run (read as text, changed in place by ``change``, written back)."""

    def damage(run: Run) -> None:
        path = path_of(run)
        table = pd.read_csv(path, dtype=str)
        change(table)
        table.to_csv(path, index=False)

    return damage


def _eval(change):
    return _csv(lambda run: run.eval_csv, change)


def _set(col: str, value, row: int = 0):
    def change(table):
        table.loc[row, col] = value

    return _eval(change)


def _drop(col: str):
    return _eval(lambda t: t.drop(columns=[col], inplace=True))


def _npy(name: str, array):
    return lambda run: np.save(run.embeddings_dir / name, array, allow_pickle=True)


def _truncate(rel: str, keep: int):
    def damage(run: Run) -> None:
        path = run.root / rel
        path.write_bytes(path.read_bytes()[:keep])

    return damage


def _symlink_image(run: Run) -> None:
    outside = run.root.parent / "secret.png"
    shutil.copy(run.image_path("img-0001"), outside)
    run.image_path("img-0000").unlink()
    run.image_path("img-0000").symlink_to(outside)


def _swap_image(run: Run) -> None:
    shutil.copy(run.image_path("img-0001"), run.image_path("img-0000"))


def _manifest(**change):
    def damage(run: Run) -> None:
        manifest = json.loads(run.manifest.read_text())
        manifest.update(change)
        run.manifest.write_text(json.dumps(manifest))

    return damage


def _log(change):
    return _csv(lambda run: run.log_csv, change)


def _approved(damage):
    """Damage, then approve what is there (so the export gets past its approval gate)."""

    def both(run: Run) -> None:
        damage(run)
        approve(run, by="test")

    return both


def _layout(text: str):
    return lambda run: (run.root.parent / "layout.json").write_text(text)


DEEP = "[" * 100_000 + "]" * 100_000
OBJ = np.array([{"a": 1}] * 36, dtype=object)
STR = np.array([["x"] * 16] * 36)
ANALYZE, STATUS, EXPORT = ["analyze", "{run}", "-q"], ["status", "{run}"], ["export", "{run}", "-q"]
APPROVE_LAYOUT = ["approve", "{run}", "--yes", "--layout", "{parent}/layout.json"]
E5, P5 = "embeddings/step-5.npy", "embeddings/step-5.probs.npy"

CASES = {
    # manifest.json
    "manifest malformed": (_text("manifest.json", "{"), ANALYZE, "manifest.json is not valid JSON"),
    "manifest empty": (_text("manifest.json", ""), ANALYZE, "manifest.json is not valid JSON"),
    "manifest a list": (_text("manifest.json", "[]"), ANALYZE, "manifest.json holds a JSON list"),
    "manifest class_names a number": (_manifest(class_names=3), ANALYZE, "class_names that are not"),
    "manifest class_names of numbers": (_manifest(class_names=[1, 2, 3]), ANALYZE, "class_names that are not"),
    "manifest too few class names": (_manifest(class_names=["cat"]), ANALYZE, "has label 1, expected 0 .. 0"),
    # eval.csv
    "eval.csv without id": (_drop("id"), ANALYZE, "eval.csv has no id column"),
    "eval.csv without label": (_drop("label"), ANALYZE, "eval.csv has no label column"),
    "eval.csv without image": (_drop("image"), ANALYZE, "eval.csv has no image column"),
    "eval.csv word label": (_set("label", "cat"), ANALYZE, "labels that are not whole numbers"),
    "eval.csv fractional label": (_set("label", "1.5"), ANALYZE, "labels that are not whole numbers"),
    "eval.csv label 99": (_set("label", "99"), ANALYZE, "has label 99, expected 0 .. 2"),
    "eval.csv label -1": (_set("label", "-1"), ANALYZE, "has label -1, expected 0 .. 2"),
    "eval.csv empty": (_text("eval.csv", ""), ANALYZE, "eval.csv cannot be read as CSV"),
    "eval.csv header only": (_text("eval.csv", "id,label,class_name,image\n"), ANALYZE, "lists no images"),
    "eval.csv binary": (_bytes("eval.csv", bytes(range(256)) * 8), ANALYZE, "eval.csv"),
    "eval.csv infinite label": (_set("label", "inf"), ANALYZE, "labels that are not whole numbers (row 2)"),
    "eval.csv row too long": (
        _append("eval.csv", "x,0,c,images/x.png,extra\n"),
        ANALYZE,
        "eval.csv cannot be read as CSV (line 38 has 5 fields, the header 4)",
    ),
    "eval.csv row too short": (_append("eval.csv", "x,0\n"), ANALYZE, "empty id, label or image cells"),
    "eval.csv unclosed quote": (
        _append("eval.csv", '"x,0,c,images/x.png\n'),
        ANALYZE,
        "eval.csv cannot be read as CSV",
    ),
    "eval.csv empty id": (_set("id", ""), ANALYZE, "empty id, label or image cells"),
    "eval.csv duplicate id": (_set("id", "img-0001"), ANALYZE, "lists id 'img-0001' twice"),
    "eval.csv id ../../secret": (_set("id", "../../secret"), ANALYZE, "ids that are not plain names"),
    # image paths are checked where images are opened (review, export), not by analyze
    "eval.csv absolute image": (_set("image", "/etc/hostname"), EXPORT, "outside the run"),
    "eval.csv image ../": (_set("image", "../secret.png"), EXPORT, "outside the run"),
    "images/ symlink out": (_symlink_image, EXPORT, "outside the run"),
    # snapshots.csv
    "snapshots.csv word step": (
        _approved(_text("snapshots.csv", "step,epoch\nabc,1\n")),
        EXPORT,
        "snapshots.csv has a step or epoch that is not a number ('abc', '1')",
    ),
    "snapshots.csv binary": (
        _approved(_bytes("snapshots.csv", bytes(range(256)) * 8)),
        EXPORT,
        "snapshots.csv cannot be read as CSV",
    ),
    # log.csv
    "log.csv word step": (
        _approved(_log(lambda t: t.__setitem__("step", "x"))),
        EXPORT,
        "log.csv has non-numeric step values",
    ),
    "log.csv word loss": (
        _approved(_log(lambda t: t.loc.__setitem__((3, "loss"), "nan?"))),
        EXPORT,
        "log.csv has non-numeric loss values",
    ),
    # exclusions.json
    "exclusions malformed": (_text("exclusions.json", "{'a'"), STATUS, "exclusions.json is not valid JSON"),
    "exclusions empty": (_text("exclusions.json", ""), STATUS, "exclusions.json is not valid JSON"),
    "exclusions a list": (_text("exclusions.json", '["img-0000"]'), STATUS, "holds a JSON list"),
    "exclusions reason a number": (_text("exclusions.json", '{"img-0000": 5}'), STATUS, "reasons that are not strings"),
    "exclusions malformed, exclude": (
        _text("exclusions.json", "{"),
        ["exclude", "{run}", "img-0003"],
        "exclude {run} --clear",
    ),
    # embeddings
    "embeddings object dtype": (_npy("step-5.npy", OBJ), ANALYZE, "step-5.npy is unreadable"),
    "embeddings string dtype": (_npy("step-5.npy", STR), ANALYZE, "step-5.npy holds <U1 values"),
    "embeddings truncated": (_truncate(E5, 300), ANALYZE, "step-5.npy is unreadable"),
    "embeddings garbage": (_bytes(E5, b"garbage" * 50), ANALYZE, "step-5.npy is unreadable"),
    "embeddings zero bytes": (_bytes(E5, b""), ANALYZE, "step-5.npy is empty"),
    "probs object dtype": (_npy("step-5.probs.npy", OBJ), ANALYZE, "step-5.probs.npy is unreadable"),
    "probs string dtype": (_npy("step-5.probs.npy", STR), ANALYZE, "step-5.probs.npy holds <U1 values"),
    "probs truncated": (_truncate(P5, 200), ANALYZE, "step-5.probs.npy is unreadable"),
    "probs zero bytes": (_bytes(P5, b""), ANALYZE, "step-5.probs.npy is empty"),
    # analysis
    "aligned.npz zero bytes": (_bytes("analysis/aligned.npz", b""), EXPORT, "aligned.npz is unreadable"),
    "aligned.npz truncated": (_truncate("analysis/aligned.npz", 500), EXPORT, "aligned.npz is unreadable"),
    "aligned.npz of other arrays": (
        lambda run: np.savez(run.analysis_dir / "aligned.npz", x=np.zeros(3)),
        EXPORT,
        "aligned.npz lacks align, coords",
    ),
    "approval.json parts a list": (
        _text("approval.json", '{"parts": [], "by": "x", "at": "y"}'),
        EXPORT,
        "approval.json is unreadable",
    ),
    "approval.json binary": (_bytes("approval.json", bytes(range(256))), EXPORT, "approval.json is unreadable"),
    "approval.json garbage": (_text("approval.json", "{"), EXPORT, "approval.json is unreadable"),
    # the approval covers what the export draws
    "class names renamed": (_manifest(class_names=["a", "b", "c"]), EXPORT, "the class names (manifest.json) changed"),
    "loss log edited": (_log(lambda t: t.loc.__setitem__((0, "loss"), "9")), EXPORT, "the loss log (log.csv) changed"),
    "image replaced": (_swap_image, EXPORT, "the images changed"),
    "image corrupt": (_bytes("images/img-0000.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40), EXPORT, "the images changed"),
    "eval.csv image path changed": (
        _set("image", "images/img-0001.png"),
        EXPORT,
        "the ids, labels or image paths (eval.csv)",
    ),
    # layouts and arguments
    "layout nested 100k deep": (_layout(DEEP), APPROVE_LAYOUT, "nested too deeply"),
    "layout not JSON": (_layout("{"), APPROVE_LAYOUT, "is not valid JSON"),
    "layout a list": (_layout("[]"), APPROVE_LAYOUT, "is not a Spotlight layout"),
    "layout save into a missing folder": (
        lambda run: None,
        ["layout", "save", "{parent}/nowhere/l.json"],
        "does not exist; create it first",
    ),
    "exclude unknown id": (lambda run: None, ["exclude", "{run}", "nope"], "unknown image id"),
}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_and_changes_nothing(case, _approved_template, tmp_path):
    damage, command, expected = CASES[case]
    run = Run(tmp_path / "run")
    shutil.copytree(_approved_template.root, run.root)
    damage(run)
    before = _hashes(tmp_path)
    args = [a.format(run=run.root, parent=tmp_path) for a in command]
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    line = cli_error(result)
    assert expected.format(run=run.root) in line, line
    assert _hashes(tmp_path) == before
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_a_corrupt_image_in_a_dataset_is_named(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(12):
        folder = tmp_path / "data" / "ab"[k % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    (tmp_path / "data" / "a" / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = CliRunner().invoke(
        cli, ["finetune", "--out", str(tmp_path / "run"), "--dataset", str(tmp_path / "data"), "--epochs", "0.1", "-q"]
    )
    line = cli_error(result)
    assert "cannot be decoded (cannot identify image file" in line and "4.png" in line, line
