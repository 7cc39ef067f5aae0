"""The three CPU classes side by side: post-processing, ``analyze`` and ``embed`` against the
notebook way, once per class, each class in its own child process.

    python -m benchmarks classes                       # all classes, all measures
    python -m benchmarks classes --quick               # small sizes, a smoke run
    python -m benchmarks classes --classes avx2 --measures embed --embed-images 64 --pairs 3

The classes (issue 23): ``native`` is this machine as it is (bf16 native where it has AMX or
AVX512-BF16); ``avx512`` is AVX-512 without bf16 and ``avx2`` AVX2 only, reproduced by capping
every library that picks its kernels by the CPU (:data:`CLASSES`). The caps are read when a
library loads, so each class runs in a fresh ``python -m benchmarks.bench_classes --child``
with its environment, and both ways of a pair run under the same caps: the notebook way (fp32
throughout) gets what that CPU would give it, and ``spotreview`` takes the path a user of that
CPU gets (``bf16_is_native`` honours ``ONEDNN_MAX_CPU_ISA``).

Each measure is :func:`benchmarks.paired.paired` pairs of ours and the notebook way, run by
the measure's own benchmark (``versus_notebook`` in bench_postprocess, bench_analyze and
embed_notebook); the table gives the medians, the median pair's ratio and the pairs' range.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IN_ALL = False  # `python -m benchmarks` alone does not run this: it re-runs three benchmarks per class
RESULT = "classes-result: "  # the child's last line of stdout: this, then the JSON result


@dataclass(frozen=True)
class CpuClass:
    name: str
    isa: str  # for the table: the highest instruction set the class's libraries may use
    env: dict[str, str] = field(default_factory=dict)


# Every variable that caps a library's kernels. A class sets its own and clears the others, so a
# cap in the caller's environment cannot leak into the native class (an OPENBLAS_CORETYPE set
# for the whole machine included: the native and AVX-512 classes get OpenBLAS's own choice).
_AVX2_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: bf16/int8 matmuls, packed linears
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL: torch's fp32 GEMM
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (softmax, layer norm, GELU)
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",  # FBGEMM: torch's quantized linears
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS (sklearn's, cleanlab's distances)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL",  # numpy's own SIMD loops
}
PIN_VARIABLES = (*_AVX2_CAPS, "DNNL_MAX_CPU_ISA")

CLASSES = {
    "native": CpuClass("native bf16", "as found (AVX512-BF16 or AMX)"),
    "avx512": CpuClass(
        "AVX-512, no bf16",
        "AVX512_CORE_VNNI",
        {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "MKL_ENABLE_INSTRUCTIONS": "AVX512_E1"},
    ),
    "avx2": CpuClass("AVX2 only", "AVX2", _AVX2_CAPS),
}

MEASURES = ("postprocess", "analyze", "embed")
# (full, quick) sizes: post-processing n x 768 x 6 snapshots; analyze n x 768 x 2 snapshots;
# embed images x 2 ViT-base checkpoints (the size is 512: ~12 min a class on 2 cores; 128 by default).
SIZES = {
    "post_n": (10_000, 1000),
    "post_snapshots": (6, 3),
    "analyze_n": (50_000, 2000),
    "analyze_snapshots": (2, 2),
    "embed_images": (128, 16),
    "pairs": (3, 2),
}
ANALYZE_GOAL_N = 50_000  # the absolute goal (<= 10 s a snapshot) is stated at this size


def _names_of(known) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of ``known``."""
    import argparse

    def names(text: str) -> list[str]:
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"unknown {unknown or repr(text)}; choose from {','.join(known)}")
        return chosen

    return names


def add_arguments(parser) -> None:
    """The options `python -m benchmarks classes` adds to the runner's."""
    parser.add_argument(
        "--classes", type=_names_of(CLASSES), help=f"comma-separated, of {','.join(CLASSES)} (default: all)"
    )
    parser.add_argument(
        "--measures", type=_names_of(MEASURES), help=f"comma-separated, of {','.join(MEASURES)} (default: all)"
    )
    parser.add_argument(
        "--pairs", type=_at_least_one, help="pairs of ours and the notebook way per measure (default 3)"
    )
    parser.add_argument("--post-n", type=_at_least_one, help="post-processing: images per snapshot (default 10000)")
    parser.add_argument("--analyze-n", type=_at_least_one, help="analyze: images per snapshot (default 50000)")
    parser.add_argument("--embed-images", type=_at_least_one, help="embed: images per checkpoint (default 128)")


def _at_least_one(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def run(
    quick: bool = False,
    classes: list[str] | None = None,
    measures: list[str] | None = None,
    pairs: int | None = None,
    post_n: int | None = None,
    analyze_n: int | None = None,
    embed_images: int | None = None,
    **_,
) -> list[dict]:
    sizes = {key: full_quick[1] if quick else full_quick[0] for key, full_quick in SIZES.items()}
    given = dict(pairs=pairs, post_n=post_n, analyze_n=analyze_n, embed_images=embed_images)
    sizes.update({key: value for key, value in given.items() if value is not None})
    rows = []
    for key in classes or CLASSES:
        for measure in measures or MEASURES:
            print(f"[classes] {key}: {measure} ...", file=sys.stderr, flush=True)
            rows.append(_row(key, measure, _in_child(key, measure, sizes), sizes))
    return rows


def _class_env(key: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in PIN_VARIABLES}
    return {**env, **CLASSES[key].env}


def _in_child(key: str, measure: str, sizes: dict) -> dict:
    """One measure under one class's caps, in a fresh process: its result as a dict."""
    start = time.perf_counter()
    load = _load()
    args = [sys.executable, "-m", "benchmarks.bench_classes", "--child", json.dumps(dict(sizes, measure=measure))]
    done = subprocess.run(args, cwd=ROOT, env=_class_env(key), capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not lines:
        raise RuntimeError(f"{key} {measure} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(lines[-1][len(RESULT) :])
    result.update(load_before=load, load_after=_load(), wall_s=time.perf_counter() - start)
    return result


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _goal(key: str, measure: str, ours_s: float, ratio: float, sizes: dict) -> tuple[str, bool | None]:
    """The issue's goal for ``measure`` on class ``key`` and whether it is met (None: not at
    this size)."""
    if key == "avx2":
        return ">= 1x (never slower)", ratio >= 1
    if measure == "postprocess":
        return ">= 5x", ratio >= 5
    if measure == "analyze":
        at_size = sizes["analyze_n"] >= ANALYZE_GOAL_N
        return f"<= 10 s/snapshot at {ANALYZE_GOAL_N // 1000}k", (ours_s <= 10) if at_size else None
    target = 3.0 if key == "native" else 1.8
    return f">= {target:g}x", ratio >= target


def _row(key: str, measure: str, result: dict, sizes: dict) -> dict:
    from .paired import Paired

    pairs = Paired(tuple(result["ours"]), tuple(result["baseline"]))
    goal, met = _goal(key, measure, pairs.ours_median, pairs.ratio, sizes)
    ratios = pairs.ratios
    return {
        "class": CLASSES[key].name,
        "ISA": CLASSES[key].isa,
        "measure": result["label"],
        "ours": f"{pairs.ours_median:.3g} {result['unit']}",
        "notebook way": f"{pairs.baseline_median:.3g} {result['unit']}",
        "ratio (median, range)": f"{pairs.ratio:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}, {len(ratios)} pairs)",
        "goal": goal,
        "met": {True: "yes", False: "NO", None: "-"}[met],
        "found": result["found"],
        "load": f"{result['load_before']} -> {result['load_after']}",
        "wall": f"{result['wall_s']:.0f} s",
    }


COLUMNS = ("class", "ISA", "measure", "ours", "notebook way", "ratio (median, range)", "goal", "met")


def table(rows: list[dict]) -> str:
    """The class table, then what each child found (kernels, precision) and the load around it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    lines.append("")
    for row in rows:
        lines.append(f"- {row['class']}, {row['measure']}: {row['found']}; load {row['load']}; {row['wall']}")
    return "\n".join(lines)


# ---- the child: runs in the class's environment --------------------------------------------


def _found() -> str:
    """What the libraries picked under this process's caps."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    from spotreview.embedding.models import bf16_is_native

    openblas = sorted({i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"})
    numpy_simd = [f for f in ("AVX512_ICL", "X86_V4", "X86_V3") if np._core._multiarray_umath.__cpu_features__.get(f)]
    return (
        f"ATen {torch.backends.cpu.get_cpu_capability()}, bf16 native {bf16_is_native('cpu')}, "
        f"OpenBLAS {'/'.join(map(str, openblas))}, numpy {numpy_simd[0] if numpy_simd else 'baseline'}"
    )


def _child(spec: dict) -> dict:
    from . import bench_analyze, bench_postprocess, embed_notebook

    measure, pairs = spec["measure"], spec["pairs"]
    found = _found()
    if measure == "postprocess":
        n, snapshots = spec["post_n"], spec["post_snapshots"]
        result = bench_postprocess.versus_notebook(n, snapshots, pairs)
        label, unit = f"post-processing (analyze + GIF), {n} x 768 x {snapshots}, whole processes", "s"
    elif measure == "analyze":
        n, snapshots = spec["analyze_n"], spec["analyze_snapshots"]
        result = bench_analyze.versus_notebook(n, snapshots, pairs)
        label, unit = f"analyze, {n} x 768 ({snapshots} snapshots), in memory", "s/snapshot"
    else:
        images = spec["embed_images"]
        result, precision = embed_notebook.versus_notebook(images, 2, pairs)
        label, unit = f"embed ViT-base, {images} images x 2 checkpoints, whole processes", "s"
        found += f"; embed precision {precision}"
    return dict(result.as_dict(), label=label, unit=unit, found=found)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--child":
        sys.exit("usage: python -m benchmarks classes [options] (this module's own entry is for its children)")
    print(RESULT + json.dumps(_child(json.loads(sys.argv[2]))), flush=True)
