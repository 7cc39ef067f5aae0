"""Fault injection with real processes and signals: kill -9 and SIGTERM of running commands,
concurrent commands, a full disk (tmpfs, root only). After every fault: nothing finished is
lost, a re-run gives byte-identical outputs, no temporary files and no child processes
are left behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spotreview.reviewing.approval import approve
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--size", "320x180"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), SPOTLIGHT_OPT_OUT="true")
    env.pop("COVERAGE_PROCESS_START", None)
    return env


def spotreview(*args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "spotreview", *map(str, args)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spotreview", *map(str, args)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def descendants(pid: int) -> set[int]:
    """PIDs of every live process below ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        todo.extend(kids - found)
        found |= kids
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            out.add(pid)
    return out


def wait_gone(pids: set[int], seconds: float = 10.0) -> set[int]:
    end = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < end:
        time.sleep(0.1)
    return alive(pids)


def wait_for(predicate, seconds: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert proc is None or proc.poll() is None, f"finished before the fault: {proc.stderr.read()}"
        assert time.monotonic() < end, "the awaited moment never came"
        time.sleep(0.02)


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp-*"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path, sub: str) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted((root / sub).iterdir()) if p.is_file()}


@pytest.fixture
def approved(analysed_run) -> Run:
    approve(analysed_run, by="test")
    return analysed_run


# --- concurrency ---------------------------------------------------------------------------


def test_eight_concurrent_excludes_keep_all_eight(analysed_run):
    ids = [f"img-{i:04d}" for i in range(8)]
    procs = [start("exclude", analysed_run.root, i, "--reason", f"r{i}") for i in ids]
    assert [p.wait(120) for p in procs] == [0] * 8
    assert read_exclusions(analysed_run) == {i: f"r{i}" for i in ids}


# --- kill -9 and SIGTERM ---------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["early", "late"])
def test_export_interrupted_leaves_no_workers_no_temp_files_and_reruns_identically(approved, tmp_path, sig, moment):
    out = approved.root / "animation.gif"
    args = ["export", approved.root, "--out", out, "--tween", "6", "--workers", "2", "-q", *SMALL]
    spotreview(*args)
    clean, full = digest(out), out.stat().st_size
    out.unlink()
    proc = start(*args)
    # The workers exist once the temporary GIF does; "late" waits until a third is written.
    size = 0 if moment == "early" else full // 3
    wait_for(lambda: any(p.stat().st_size > size for p in temp_files(approved.root)), proc=proc)
    kids = descendants(proc.pid)
    assert len(kids) >= 2  # the render workers
    proc.send_signal(sig)
    code = proc.wait(30)
    assert code == (-9 if sig == signal.SIGKILL else 128 + signal.SIGTERM)
    assert wait_gone(kids) == set(), "render workers outlived the export"
    assert not out.exists()  # no half-written animation under the final name
    if sig == signal.SIGTERM:
        assert temp_files(approved.root) == []  # removed on the way out
    spotreview(*args)  # the next run sweeps what a SIGKILL left
    assert temp_files(approved.root) == []
    assert digest(out) == clean


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 1.5, 2.5])
def test_analyze_killed_anywhere_resumes_byte_identically(synthetic_run, tmp_path, delay):
    reference = Run(tmp_path / "reference")
    shutil.copytree(synthetic_run.root, reference.root)
    spotreview("analyze", reference.root, "-q")
    proc = start("analyze", synthetic_run.root, "-q")
    time.sleep(delay)
    proc.kill()
    proc.wait(30)
    spotreview("analyze", synthetic_run.root, "-q")
    assert temp_files(synthetic_run.root) == []
    assert tree(synthetic_run.root, "analysis") == tree(reference.root, "analysis")


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", None])
def test_analyze_repairs_its_own_corrupt_cache(analysed_run, tmp_path, damage):
    reference = tree(analysed_run.root, "analysis")
    path = analysed_run.analysis_dir / "step-5.npz"
    path.write_bytes(path.read_bytes()[:300] if damage is None else damage)  # e.g. a power loss
    result = spotreview("analyze", analysed_run.root, "-q")
    assert "1 of 5 snapshots computed" in result.stdout
    assert tree(analysed_run.root, "analysis") == reference


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Run:
    run = Run(tmp_path_factory.mktemp("ft") / "run")
    spotreview("finetune", "--out", run.root, *FINETUNE)
    return run


FINETUNE = ["--eval-size", "40", "--epochs", "0.3", "--save-steps", "3", "--keep-checkpoints", "-q"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, delay", [(signal.SIGKILL, 2.0), (signal.SIGTERM, 4.0)])
def test_finetune_interrupted_then_rerun_gives_the_same_run(finetuned, tmp_path, sig, delay):
    run = Run(tmp_path / "run")
    proc = start("finetune", "--out", run.root, *FINETUNE)
    time.sleep(delay)
    kids = descendants(proc.pid)
    proc.send_signal(sig)
    proc.wait(60)
    assert wait_gone(kids) == set()
    spotreview("finetune", "--out", run.root, "--overwrite", *FINETUNE)
    assert temp_files(run.root) == []
    assert tree(run.root, "embeddings") == tree(finetuned.root, "embeddings")


@pytest.mark.slow
@pytest.mark.parametrize("sig, after", [(signal.SIGKILL, 1), (signal.SIGTERM, 2)])
def test_embed_interrupted_resumes_byte_identically(finetuned, tmp_path, sig, after):
    """Killed post-hoc embed, then embed again: the same bytes as one uninterrupted embed (post-hoc
    vectors use bf16 weights where training used autocast, so compare post hoc with post hoc)."""

    def stripped(name: str) -> Run:
        run = Run(tmp_path / name)
        shutil.copytree(finetuned.root, run.root)
        for step, _ in run.checkpoints():
            run.embedding_path(step).unlink()
            run.probs_path(step).unlink()
        return run

    reference = stripped("reference")
    spotreview("embed", reference.root, "-q")
    run = stripped("run")
    proc = start("embed", run.root, "-q")
    wait_for(lambda: len(run.snapshots()) >= 1 + after, proc=proc)
    proc.send_signal(sig)
    proc.wait(60)
    spotreview("embed", run.root, "-q")
    assert temp_files(run.root) == []
    assert tree(run.root, "embeddings") == tree(reference.root, "embeddings")


@pytest.mark.slow
def test_review_killed_takes_the_spotlight_server_with_it(approved):
    proc = start("review", approved.root, "--no-browser", "--no-approve-prompt", "--timeout", "120")
    wait_for(lambda: "Spotlight review of" in (proc.stderr.readline() or ""), seconds=120, proc=proc)
    server = descendants(proc.pid)
    assert server  # Spotlight serves from a child process
    proc.kill()
    proc.wait(30)
    assert wait_gone(server) == set(), "the Spotlight server outlived `review`"


# --- full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6M", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until only about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free - leave
    with open(disk / "filler", "wb") as f:
        while free > 0:
            chunk = min(free, 1 << 20)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            free -= chunk


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["animation.gif", "animation.mp4", "animation.html"])
def test_full_disk_keeps_the_previous_animation(approved, small_disk, name):
    run = Run(small_disk / "run")
    shutil.copytree(approved.root, run.root)
    out = run.root / name
    spotreview("export", run.root, "--out", out, "-q", *SMALL)
    good = digest(out)
    fill(small_disk, out.stat().st_size // 4)  # room for a quarter of the new file
    line = one_error_line(spotreview("export", run.root, "--out", out, "-q", "--tween", "3", *SMALL, check=False))
    assert f"no space left on device writing {out}" in line
    assert digest(out) == good
    assert temp_files(run.root) == []


def test_full_disk_analyze_and_exclude_keep_what_is_there(approved, small_disk):
    run = Run(small_disk / "run")
    shutil.copytree(approved.root, run.root)
    for p in run.analysis_dir.glob("step-*.npz"):
        p.unlink()  # analyze must write again
    run.exclusions.write_text('{"img-0001": ""}\n')
    before = {p: digest(p) for p in run.root.rglob("*") if p.is_file()}
    fill(small_disk, 1_000)
    one_error_line(spotreview("analyze", run.root, "-q", check=False))
    line = one_error_line(
        spotreview("exclude", run.root, *[f"img-{i:04d}" for i in range(36)], "--reason", "x" * 2000, check=False)
    )
    assert "no space left on device writing" in line
    after = {p: digest(p) for p in run.root.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before
    assert temp_files(run.root) == []


@pytest.mark.slow
def test_running_review_survives_a_bad_exclusions_file_and_never_serves_outside_the_run(approved, tmp_path):
    import io
    import json
    import socket
    import urllib.request

    import pandas as pd
    from PIL import Image

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    proc = start("review", approved.root, "--no-browser", "--no-approve-prompt", "--port", port, "--timeout", "120")
    log: list[str] = []
    wait_for(lambda: log.append(proc.stderr.readline()) or url in log[-1], seconds=120, proc=proc)

    def get(path: str) -> bytes:
        with urllib.request.urlopen(url + path, timeout=10) as r:
            return r.read()

    def image(row: int) -> Image.Image:
        table = json.loads(get("api/table/"))
        generation = table.get("generationId", table.get("generation_id"))
        return Image.open(io.BytesIO(get(f"api/table/image/{row}?generation_id={generation}"))).convert("RGB")

    try:
        approved.exclusions.write_text("{not json")
        time.sleep(3)  # a few refresh polls
        assert proc.poll() is None and json.loads(get("api/table/"))["columns"]
        secret = tmp_path / "secret.png"
        Image.new("RGB", (16, 16), (255, 0, 0)).save(secret)
        table = pd.read_csv(approved.eval_csv)
        table.loc[0, "image"] = str(secret)
        table.to_csv(approved.eval_csv, index=False)
        approved.exclusions.write_text("{}")  # changes the table's inputs: a refresh is tried
        time.sleep(3)
        assert proc.poll() is None
        assert image(0).getpixel((8, 8)) != (255, 0, 0)  # still the run's own image
    finally:
        kids = descendants(proc.pid)
        proc.terminate()
        proc.wait(30)
        assert wait_gone(kids) == set()
    rest = proc.stderr.read()
    assert "Traceback" not in rest and "outside the run" in "".join(log) + rest


def test_read_only_run_every_command_is_one_line(approved, small_disk, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where a read-only run's table goes
    run = Run(small_disk / "run")
    shutil.copytree(approved.root, run.root)
    before = {p: digest(p) for p in run.root.rglob("*") if p.is_file()}
    done = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
    for args in (
        ["analyze", run.root, "-q"],
        ["exclude", run.root, "img-0001"],
        ["approve", run.root, "--yes"],
        ["export", run.root, "-q", *SMALL],
    ):
        line = one_error_line(spotreview(*args, check=False))
        assert "Read-only file system" in line and "make it writable" in line, (args, line)
    assert spotreview("status", run.root).returncode == 0  # reading needs no writing
    # A read-only run can still be reviewed (issue 9): its table goes to the cache instead.
    reviewed = spotreview("review", run.root, "--no-browser", "--timeout", "1", stdin=subprocess.DEVNULL)
    assert "read-only; review table written to" in reviewed.stderr, reviewed.stderr
    assert list((tmp_path / "cache" / "spotreview" / "tables").glob("*/review.parquet"))
    assert {p: digest(p) for p in run.root.rglob("*") if p.is_file()} == before
