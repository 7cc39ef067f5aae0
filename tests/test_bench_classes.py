"""Smoke tests of ``python -m benchmarks classes`` (benchmarks/bench_classes.py): the pairs'
summary, the options the runner takes for it, and one real child under the AVX2 caps. The
figures themselves are measured by the benchmark, never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_classes
from benchmarks.paired import paired

ROOT = Path(__file__).resolve().parent.parent


def test_pairs_alternate_and_the_ratio_is_the_median_pairs():
    calls = []

    def timed(name, seconds):
        def run():
            calls.append(name)
            return seconds.pop(0)

        return run

    result = paired(timed("ours", [1.0, 2.0, 4.0]), timed("notebook", [5.0, 4.0, 4.0]), pairs=3)
    assert calls == ["notebook", "ours", "ours", "notebook", "notebook", "ours"]
    assert result.ratios == [1.0, 2.0, 5.0] and result.ratio == 2.0
    assert (result.ours_median, result.baseline_median) == (2.0, 4.0)
    assert result.scaled(0.5).ours == (0.5, 1.0, 2.0) and result.scaled(0.5).ratio == 2.0
    with pytest.raises(ValueError):
        paired(lambda: 1.0, lambda: 1.0, pairs=0)


def test_goals_per_class():
    sizes = {"analyze_n": 50_000}
    assert bench_classes._goal("avx2", "embed", 9.0, 0.99, sizes) == (">= 1x (never slower)", False)
    assert bench_classes._goal("native", "embed", 9.0, 2.9, sizes)[1] is False
    assert bench_classes._goal("avx512", "embed", 9.0, 1.9, sizes)[1] is True
    assert bench_classes._goal("avx512", "postprocess", 1.0, 4.9, sizes)[1] is False
    assert bench_classes._goal("native", "analyze", 9.9, 0.5, sizes)[1] is True
    # the absolute analyze goal is stated at 50k: at a smaller size it is not judged
    assert bench_classes._goal("native", "analyze", 9.9, 0.5, {"analyze_n": 2000})[1] is None


def test_a_cap_in_the_callers_environment_does_not_leak_into_the_native_class(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    native = bench_classes._class_env("native")
    assert "ONEDNN_MAX_CPU_ISA" not in native and "ATEN_CPU_CAPABILITY" not in native
    assert bench_classes._class_env("avx512")["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_VNNI"


def test_the_runner_takes_the_class_options_and_rejects_an_unknown_class():
    def benchmarks(*args):
        return subprocess.run(
            [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    shown = benchmarks("classes", "--help")
    assert shown.returncode == 0 and "--embed-images" in shown.stdout and "--classes" in shown.stdout
    for bad_options in (["--classes", "avx1024"], ["--measures", ""], ["--pairs", "0"], ["--embed-images", "x"]):
        bad = benchmarks("classes", "--quick", *bad_options)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.strip().splitlines()[-1].startswith("python -m benchmarks: error: argument"), bad.stderr


def test_a_child_under_the_avx2_caps_takes_the_avx2_kernels_and_runs_both_ways():
    sizes = dict(pairs=1, analyze_n=300, analyze_snapshots=2, post_n=1, post_snapshots=1, embed_images=1)
    result = bench_classes._in_child("avx2", "analyze", sizes)
    assert "ATen AVX2" in result["found"] and "bf16 native False" in result["found"], result["found"]
    assert "numpy X86_V3" in result["found"], result["found"]
    row = bench_classes._row("avx2", "analyze", result, sizes)
    assert row["ISA"] == "AVX2" and row["goal"] == ">= 1x (never slower)"
    assert len(result["ours"]) == len(result["baseline"]) == 1 and min(result["ours"] + result["baseline"]) > 0
    assert "| AVX2 only | AVX2 | analyze, 300 x 768" in bench_classes.table([row])
