"""Two runs side by side: the ``compare`` command, and the approval of a comparison that
``approve --compare`` and ``review --compare`` offer. Each parses, calls one library function and
reports."""

from __future__ import annotations

import click

import spotreview
from spotreview import defaults as D
from spotreview.cli.format import format_approved
from spotreview.cli.options import IMAGE_SET, QUIET, _RunType, frame_options
from spotreview.util.text import plural

COMPARE = click.option(
    "--compare",
    "compare",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    metavar="RUN_B",
    help="Another run of the same evaluation images, side by side with RUN (refused for another set).",
)


def _later(run, compare) -> str:
    return f"approve it later with `spotreview approve {run} --compare {compare}`"


def format_comparison_preview(record) -> str:
    """What a ``ComparisonApproval`` from ``preview_comparison`` will approve."""
    return "\n".join(
        [
            f"Approving the comparison of {record.a['run']} (A) with {record.b['run']} (B) for export:",
            *(
                f"  {side.upper()}: sha256 {getattr(record, side)['digest'][:12]} over its analysis, exclusions, "
                f"layout, class names, eval.csv, images and loss log"
                for side in ("a", "b")
            ),
            f"  layout: {record.layout or 'default layout'}",
            f"  by:     {record.by}",
        ]
    )


def approve_pair(run, compare, *, by=None, layout=None, ask: bool = True) -> None:
    """Show what approving the comparison of ``run`` with ``compare`` covers, ask (when
    ``ask``), record it and report."""
    preview = spotreview.preview_comparison(run, compare, by=by, layout=layout)
    click.echo(format_comparison_preview(preview))
    if ask and not click.confirm("Approve?"):
        click.echo(f"Not approved; {_later(run, compare)}")
        return
    click.echo(format_approved(spotreview.approve_comparison(run, compare, by=preview.by, layout=layout)))


def after_review(run, compare, *, layout=None, ask: bool) -> None:
    """After ``review RUN --compare RUN_B``: offer to approve the comparison."""
    if not ask or not click.confirm(f"Approve the comparison of {run} with {compare} for export?"):
        click.echo(f"Not approved; {_later(run, compare)}")
        return
    click.echo(format_approved(spotreview.approve_comparison(run, compare, layout=layout)))


@click.command("compare")
@click.argument("run_a", type=_RunType(file_okay=False))
@click.argument("run_b", type=_RunType(file_okay=False))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="The animation: .gif, .mp4 or .html (two interactive players on one clock).",
)
@click.option(
    "--sync",
    type=click.Choice(D.SYNC_MODES),
    default=D.SYNC,
    show_default=True,
    help="Line the runs up by training progress (a step as a share of its run's last snapshot step), "
    "by step or by epoch.",
)
@frame_options("key frames", "Images on the leaderboard of the images whose outcome differs most.")
@click.option("--force", is_flag=True, help="Export even if the comparison is not approved (recorded).")
@IMAGE_SET
@QUIET
def compare_cmd(run_a, run_b, image_set, **options):
    """Render RUN_A and RUN_B (runs of the same evaluation images) side by side in one animation.

    Each panel keeps its run's own axes; the key frames are every snapshot of either run, lined up
    by --sync. Needs the comparison approved: `spotreview review RUN_A --compare RUN_B`, then
    `spotreview approve RUN_A --compare RUN_B`.
    """
    done = spotreview.compare(run_a, run_b, image_set=image_set, **options)
    click.echo(f"wrote {done.out} ({plural(done.frames, 'key frame' if done.format == 'html' else 'frame')})")
    if done.counts:
        click.echo("A -> B: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in done.counts.items()))
    if done.forced:
        click.echo(f"forced: the comparison is not approved ({done.approval['state']})")
