"""Where a run stands: snapshots, first/last metrics, exclusions and approval (``spotreview status``)."""

from __future__ import annotations

from typing import Any

from spotreview.analysis.store import load_analysis
from spotreview.errors import SpotreviewError
from spotreview.reviewing.approval import approval_status
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import unfinished
from spotreview.util.text import sig


def run_status(run) -> dict:
    """Where ``run`` stands: snapshots, first/last metrics, exclusions, approval.

    Returns ``{"run", "snapshots": [steps], "analysis": {...} | None, "analysis_error":
    str | None, "exclusions": {id: reason}, "approval": ApprovalStatus}``; ``analysis`` has
    ``align`` and ``first``/``last`` dicts with ``step``, ``accuracy``, ``knn_accuracy``,
    ``disparity``, ``top`` (ids of the most atypical images at that snapshot) and
    ``top_scores`` (their outlier scores); ``unfinished``: whether the manifest says training
    has not finished.
    """
    run = Run(run).require()
    out: dict[str, Any] = {
        "run": str(run.root),
        "snapshots": run.snapshots(),
        "unfinished": unfinished(run),
        "analysis": None,
        "analysis_error": None,
        "exclusions": read_exclusions(run),
    }
    a = None
    try:
        a = load_analysis(run)
    except SpotreviewError as e:
        out["analysis_error"] = str(e)
    else:

        def at(k: int) -> dict:
            return {
                "step": int(a.steps[k]),
                "accuracy": float(a.accuracy[k]),
                "knn_accuracy": float(a.knn_accuracy[k]),
                "disparity": float(a.disparity[k]),
                "top": [a.ids[i] for i in a.top(k % len(a.steps), 3)],
                "top_scores": [float(a.scores[k, i]) for i in a.top(k % len(a.steps), 3)],
            }

        out["analysis"] = {"align": a.align, "first": at(0), "last": at(-1)}
    out["approval"] = approval_status(run, analysis=a)  # the analysis is hashed once
    return out


def format_status(status: dict) -> str:
    """``run_status`` as lines for a terminal."""
    steps = status["snapshots"]
    lines = [f"run:         {status['run']}"]
    lines.append(f"snapshots:   {len(steps)} (steps {steps[0]} .. {steps[-1]})" if steps else "snapshots:   none")
    if status.get("unfinished"):
        lines.append("training:    unfinished; re-run the same `spotreview finetune` command to resume it")
    a = status["analysis"]
    if a is None:
        lines.append(f"analysis:    {status['analysis_error']}")
    else:
        lines.append(f"analysis:    aligned to {a['align']}")
        for which in ("first", "last"):
            m = a[which]
            acc = "n/a" if m["accuracy"] != m["accuracy"] else f"{m['accuracy']:.3f}"
            lines.append(
                f"  {which:<5} step {m['step']:<6} accuracy {acc}  kNN accuracy "
                f"{m['knn_accuracy']:.3f}  disparity {m['disparity']:.4f}  most atypical "
                + ", ".join(f"{i} ({sig(v)})" for i, v in zip(m["top"], m["top_scores"]))
            )
    lines.append(f"exclusions:  {len(status['exclusions'])}")
    lines.append(f"approval:    {status['approval'].message}")
    return "\n".join(lines)
