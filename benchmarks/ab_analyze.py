"""A/B of a fresh ``analyze``: two source trees on one synthetic run, in fresh processes,
paired and alternated (A B, B A, A B, ...), so both see the same machine and page cache.

    python benchmarks/ab_analyze.py --base REV [--n 10000] [--snapshots 20] [--pairs 4]

Tree A is ``git archive REV`` unpacked in a temporary folder, tree B the working tree. The run
is made once by ``bench_analyze._make_run`` (10 classes, 768 dims, probabilities at every
snapshot); before every call its ``analysis/`` folder is deleted, so each call is a fresh
``analyze`` of the same files. Each figure is ``analyze(run, quiet=True)`` timed whole inside
its process (imports of the package before the clock starts, torch's inside it, alike for both).
Prints every call, then per tree the median and range, and the ratio B / A of the medians and
of each pair. Not run by ``python -m benchmarks`` (it needs a revision to compare with).
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
TIMED = (
    "import sys, time; from spotreview.analysis.analyze import analyze; "
    "t = time.perf_counter(); analyze(sys.argv[1], quiet=True); print(time.perf_counter() - t)"
)


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


def _time(tree: Path, run: Path) -> float:
    shutil.rmtree(run / "analysis", ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", TIMED, str(run)], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision of tree A")
    parser.add_argument("--n", type=int, default=10_000, help="images")
    parser.add_argument("--snapshots", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench_analyze import _make_run

    with tempfile.TemporaryDirectory() as tmp:
        trees = {"A": _unpack(args.base, Path(tmp)), "B": HERE.parent}
        run, _, _ = _make_run(Path(tmp) / "run", args.n, args.snapshots)
        _time(trees["B"], run.root)  # warm the page cache and the imports' files; not counted
        times: dict[str, list[float]] = {"A": [], "B": []}
        for pair in range(args.pairs):
            for name in "AB" if pair % 2 == 0 else "BA":
                times[name].append(_time(trees[name], run.root))
                print(f"pair {pair + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s, range {min(values):.2f}-{max(values):.2f} s")
    ratios = [b / a for a, b in zip(times["A"], times["B"])]
    print(
        f"B / A: {statistics.median(times['B']) / statistics.median(times['A']):.3f} (medians); "
        f"pairs {', '.join(f'{r:.3f}' for r in ratios)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
