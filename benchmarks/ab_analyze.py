"""A/B of a fresh ``analyze``: two source trees on one synthetic run, in fresh processes,
paired and alternated (A B, B A, A B, ...), so both see the same machine and page cache.

    python benchmarks/ab_analyze.py --base REV [--n 10000] [--snapshots 20] [--pairs 4]
                                   [--inside MODULE:FUNCTION]

Tree A is ``git archive REV`` unpacked in a temporary folder, tree B the working tree. The run
is made once by ``bench_analyze._make_run`` (10 classes, 768 dims, probabilities at every
snapshot); before every call its ``analysis/`` folder is deleted, so each call is a fresh
``analyze`` of the same files. Each figure is ``analyze(run, quiet=True)`` timed whole inside
its process (imports of the package before the clock starts, torch's inside it, alike for
both), in wall seconds and in the process's CPU seconds (user + system, all threads: less
swayed by other jobs on a shared machine). ``--inside`` also sums, in tree B's calls, the wall
seconds spent in one function (wrapped before the call), as a share of that call. Prints every
call, then per tree the medians and ranges, and the ratio B / A of the medians and of each
pair. Not run by ``python -m benchmarks`` (it needs a revision to compare with).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMED = """
import importlib, sys, time
from spotreview.analysis.analyze import analyze
spent = [0.0]
if len(sys.argv) > 2:  # MODULE:FUNCTION to time inside the call
    module, name = sys.argv[2].split(":")
    module = importlib.import_module(module)
    inner = getattr(module, name)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    setattr(module, name, timed)
wall, cpu = time.perf_counter(), time.process_time()
analyze(sys.argv[1], quiet=True)
print(time.perf_counter() - wall, time.process_time() - cpu, spent[0])
"""


def _unpack(rev: str, where: Path) -> Path:
    tree = where / "a"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", rev], check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(tree, filter="data")
    return tree


def _time(tree: Path, run: Path, inside: str = "") -> tuple[float, float, float]:
    """(wall s, CPU s, wall s inside ``inside``) of one fresh analyze of ``run`` by ``tree``."""
    shutil.rmtree(run / "analysis", ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-c", TIMED, str(run)] + ([inside] if inside else [])
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    wall, cpu, spent = map(float, out.stdout.split()[-3:])
    return wall, cpu, spent


def _report(times: dict[str, list[tuple[float, float, float]]], inside: str) -> None:
    for column, what in ((0, "wall"), (1, "CPU")):
        medians = {}
        for name, rows in times.items():
            values = [row[column] for row in rows]
            medians[name] = statistics.median(values)
            print(f"{name} {what}: median {medians[name]:.2f} s, range {min(values):.2f}-{max(values):.2f} s")
        ratios = [b[column] / a[column] for a, b in zip(times["A"], times["B"])]
        print(
            f"B / A {what}: {medians['B'] / medians['A']:.3f} (medians); pairs {', '.join(f'{r:.3f}' for r in ratios)}"
        )
    if inside:
        shares = [spent / wall for wall, _, spent in times["B"]]
        print(
            f"B in {inside}: median {statistics.median(shares):.1%} of the call ({min(shares):.1%}-{max(shares):.1%})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision of tree A")
    parser.add_argument("--n", type=int, default=10_000, help="images")
    parser.add_argument("--snapshots", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--inside", default="", help="MODULE:FUNCTION whose time in tree B's calls is summed")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.bench_analyze import _make_run

    with tempfile.TemporaryDirectory() as tmp:
        trees = {"A": _unpack(args.base, Path(tmp)), "B": HERE.parent}
        run, _, _ = _make_run(Path(tmp) / "run", args.n, args.snapshots)
        for tree in trees.values():  # warm the page cache, the imports' files and bytecode; not counted
            _time(tree, run.root)
        times: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
        for pair in range(args.pairs):
            for name in "AB" if pair % 2 == 0 else "BA":
                times[name].append(_time(trees[name], run.root, args.inside if name == "B" else ""))
                wall, cpu, spent = times[name][-1]
                extra = f", {spent:.2f} s in {args.inside}" if name == "B" and args.inside else ""
                print(f"pair {pair + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU{extra}", flush=True)
    _report(times, args.inside)
    return 0


if __name__ == "__main__":
    sys.exit(main())
