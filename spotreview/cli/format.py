"""What the commands print: the library's result records as lines for a terminal.

The library returns records (``Finetuned``, ``Embedded``, ``Analysis``, ``Approval``,
``RunStatus``) and never prints; turning them into text is the CLI's job, kept here. Nothing
heavy is imported: the records arrive already made.
"""

from __future__ import annotations

import math

from spotreview.defaults import TRUST_LOW
from spotreview.util.text import plural, sig


def format_finetuned(done) -> str:
    """A ``Finetuned``: what was trained, the snapshots, the accuracy, the files."""
    steps = done.snapshots
    acc = " -> ".join(f"{a:.1%} (step {s})" for s, a in done.accuracy.items() if a is not None)
    kept = f", {done.checkpoints} checkpoints" if done.checkpoints else ""
    train = f" and {done.num_train_recorded} training images" if done.num_train_recorded else ""
    return "\n".join(
        [
            f"Fine-tuned {done.model} on {done.dataset} in {done.seconds:.0f} s: "
            f"{len(steps)} snapshots (steps {steps[0]}..{steps[-1]}) of {done.num_images} eval images{train}",
            f"Recording the snapshots took {done.record_seconds:.0f} s of it",
            *([f"Eval accuracy: {acc}"] if acc else []),
            f"Run: {done.run.root} (embeddings/, log.csv, images/, eval.csv, manifest.json{kept}"
            + (", train/ for `--set train`)" if train else ")"),
        ]
    )


def format_embedded(done) -> str:
    """An ``Embedded``: the snapshots embedded now, or that all were up to date."""
    where = done.run.embeddings_dir
    if done.steps:
        steps = ", ".join(map(str, done.steps))
        return f"Embedded {len(done.steps)} snapshots (steps {steps}; {done.precision} on {done.device}) into {where}"
    return f"Nothing to embed: all {len(done.snapshots)} snapshots in {where} are up to date"


def format_table(analysis) -> str:
    """An ``Analysis`` as a short per-snapshot table: step, accuracy, kNN accuracy, the 2-D
    picture's trustworthiness (``low`` below ``TRUST_LOW``), disparity, worst outlier."""

    def num(x: float, digits: int = 3) -> str:
        return "-" if not math.isfinite(x) else f"{x:.{digits}f}"

    header = ("step", "accuracy", "kNN acc", "trust", "disparity", "worst outlier (score)")
    rows = [header]
    for s, step in enumerate(analysis.steps):
        worst = int(analysis.top(s, 1)[0])
        rows.append(
            (
                str(step),
                num(analysis.accuracy[s]),
                num(analysis.knn_accuracy[s]),
                trust_text(analysis.trustworthiness[s]),
                num(analysis.disparity[s]),
                f"{analysis.ids[worst]} ({sig(analysis.scores[s, worst])})",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) if c < 5 else cell for c, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows
    )


def trust_text(t: float) -> str:
    """A trustworthiness as shown to people: two decimals (the estimate is good to ~0.01),
    ``(low)`` below ``TRUST_LOW``, ``n/a`` when there were too few images."""
    if not math.isfinite(t):
        return "n/a"
    return f"{t:.2f}" + (" (low)" if t < TRUST_LOW else "")


def format_approval_preview(run, approval) -> str:
    """What an ``Approval`` from ``approval_preview`` will approve."""
    excl = approval.exclusions
    first, last = approval.steps
    shown = ", ".join(list(excl)[:5]) + (", ..." if len(excl) > 5 else "")
    return "\n".join(
        [
            f"Approving {run.root} for export:",
            f"  analysis:   {approval.snapshots} snapshot(s), steps {first} .. {last} "
            f"(sha256 {approval.parts['analysis'][:12]})",
            f"  exclusions: {len(excl)}" + (f" ({shown})" if excl else ""),
            f"  layout:     {approval.layout or 'default layout'}",
            f"  by:         {approval.by}",
        ]
    )


def format_approved(approval) -> str:
    """A recorded ``Approval`` in one line."""
    return f"Approved by {approval.by} at {approval.at} (digest {approval.digest[:12]})"


def format_status(status) -> str:
    """A ``RunStatus``."""
    steps = status.snapshots
    lines = [f"run:         {status.run.root}"]
    if len(status.run.image_sets()) > 1 or status.run.image_set != "eval":
        others = [f"{name} (`--set {name}`)" for name in status.run.image_sets() if name != status.run.image_set]
        lines.append(f"image set:   {status.run.image_set}; the run also has {', '.join(others)}")
    lines.append(f"snapshots:   {len(steps)} (steps {steps[0]} .. {steps[-1]})" if steps else "snapshots:   none")
    if status.precision:
        lines.append("precision:   " + "; ".join(f"{p} ({who})" for who, p in status.precision.items()))
    if status.unfinished:
        lines.append("training:    unfinished; re-run the same `spotreview finetune` command to resume it")
    if status.first is None:
        lines.append(f"analysis:    {status.analysis_error}")
    else:
        lines.append(f"analysis:    aligned to {status.align}")
        for which, m in (("first", status.first), ("last", status.last)):
            acc = "n/a" if m.accuracy != m.accuracy else f"{m.accuracy:.3f}"
            lines.append(
                f"  {which:<5} step {m.step:<6} accuracy {acc}  kNN accuracy "
                f"{m.knn_accuracy:.3f}  trustworthiness {trust_text(m.trustworthiness)}  "
                f"disparity {m.disparity:.4f}  most atypical "
                + ", ".join(f"{i} ({sig(v)})" for i, v in zip(m.top, m.top_scores))
            )
        if status.low_trust:
            low = status.low_trust
            shown = ", ".join(map(str, low[:8])) + (", ..." if len(low) > 8 else "")
            lines.append(
                f"  2-D picture: trustworthiness below {TRUST_LOW:g} at {plural(len(low), 'snapshot')} of "
                f"{len(steps)} (step {shown}); there it misplaces which images are neighbours"
            )
    lines.append(f"exclusions:  {len(status.exclusions)}")
    lines.append(f"approval:    {status.approval.message}")
    return "\n".join(lines)


def format_follow(update) -> list[str]:
    """A ``FollowUpdate``: one line per new snapshot, or the training's new state."""
    lines = []
    for m in update.new:
        acc = "n/a" if m.accuracy != m.accuracy else f"{m.accuracy:.3f}"
        lines.append(
            f"step {m.step:<6} accuracy {acc}  kNN accuracy {m.knn_accuracy:.3f}  most atypical {', '.join(m.top)}"
        )
    ended = {
        "finished": f"training finished: {update.snapshots} snapshots",
        "stopped": f"training stopped unfinished at {update.snapshots} snapshots (its process is gone); "
        "re-run the same command to resume it",
    }
    if update.state in ended:
        lines.append(ended[update.state])
    return lines
