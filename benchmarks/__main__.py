"""Run the benchmarks and print one table of measured figures and ratios.

    python -m benchmarks              # all of them
    python -m benchmarks embed        # one (module benchmarks/bench_embed.py)
    python -m benchmarks --quick      # smaller sizes, a smoke run
    python -m benchmarks embed --device cuda --images 4096   # embed throughput on a GPU
    python -m benchmarks knn analyze --device cuda --n 50000   # neighbour search on a GPU
    python -m benchmarks classes --quick   # the three CPU classes side by side (bench_classes.py)

Each ``benchmarks/bench_NAME.py`` defines ``run(quick: bool, **options) -> list[dict]``
(options: ``device``, ``n``, ``baseline_large``, ``images``, ``snapshots``, passed where its
``run`` accepts them); a row has
``benchmark``, ``measure``, ``value``, ``unit`` and optionally ``baseline``, ``ratio``,
``target``, ``met`` (bool) and ``note``. Ratios compare against a baseline measured in
the same run on the same machine; nothing here is a timed assertion.
A module may also define ``add_arguments(parser)`` (its own options, passed to its ``run``),
``table(rows) -> str`` (its rows printed its own way) and ``IN_ALL = False`` (run only when
named).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = ("benchmark", "measure", "value", "unit", "baseline", "ratio", "target", "met", "note")


def machine() -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads"
    )


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _parser(modules) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0], add_help=False)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--device", default="auto", help="torch device for the neighbour search (knn)")
    parser.add_argument("--n", type=int, help="the large size for the knn benchmark (default 50000)")
    parser.add_argument(
        "--baseline-large",
        action="store_true",
        help="analyze: measure the former path at 50k too (~45 s) instead of estimating it",
    )
    parser.add_argument("--snapshots", type=int, help="scale: snapshots of the synthetic run (default 10)")
    parser.add_argument("--images", type=int, help="embed: images per snapshot (throughput run, no baseline)")
    parser.add_argument(
        "--compile",
        action="store_true",
        dest="torch_compile",
        help="embed throughput run: also the steady state through torch.compile",
    )
    for module in modules:  # the named benchmarks' own options
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(module.__name__.rsplit(".", 1)[-1]))
    return parser


def _module(name: str):
    return importlib.import_module(f"benchmarks.bench_{name}")


def main(argv: list[str] | None = None) -> int:
    available = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    named, _ = _parser([]).parse_known_args(argv)  # which benchmarks, to add their options
    parser = _parser([_module(name) for name in named.names if name in available])
    parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
    args = parser.parse_args(argv)
    names = args.names or [name for name in available if getattr(_module(name), "IN_ALL", True)]
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    print(f"Machine: {machine()}\n", flush=True)
    rows = []
    for name in names:
        module = _module(name)
        options = {key: value for key, value in vars(args).items() if key not in ("names", "quick")}
        accepted = inspect.signature(module.run).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            options = {key: value for key, value in options.items() if key in accepted}
        module_rows = module.run(quick=args.quick, **options)
        if hasattr(module, "table"):
            print(module.table(module_rows) + "\n", flush=True)
        else:
            rows += module_rows
    if rows:
        print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
