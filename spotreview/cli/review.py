"""The review's commands: review, exclude, bundle, approve, status, layout. Each parses, calls
one library function and reports."""

from __future__ import annotations

import sys

import click

import spotreview
from spotreview import defaults as D
from spotreview.cli.compare import COMPARE, after_review, approve_pair
from spotreview.cli.format import format_approval_preview, format_approved, format_follow, format_status
from spotreview.cli.options import IMAGE_SET, LAYOUT, QUIET, RUN, THRESHOLD, run_view


def _interactive() -> bool:
    return sys.stdin.isatty()


def _later(run) -> str:
    where = "" if run.image_set == "eval" else f" --set {run.image_set}"
    return f"approve it later with `spotreview approve {run.root}{where}`"


@click.command("review")
@click.argument("run", type=click.Path(exists=True))
@LAYOUT
@click.option("--host", default=D.HOST, show_default=True, help="Address to serve on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option("--analytics", is_flag=True, help="Allow Spotlight's usage analytics (off by default).")
@click.option("--insecure", is_flag=True, help="Serve a non-local --host without TLS (trusted networks only).")
@click.option("--no-approve-prompt", is_flag=True, help="Do not ask to approve when the review ends.")
@THRESHOLD
@click.option(
    "--embeddings",
    is_flag=True,
    help="Add the last snapshot's embedding (for Spotlight's similarity map; costs memory).",
)
@click.option(
    "--follow", is_flag=True, help="RUN is still training: show each new snapshot as it lands (from the first on)."
)
@IMAGE_SET
@COMPARE
@QUIET
def review_cmd(
    run,
    follow,
    image_set,
    compare,
    layout_file,
    host,
    port,
    no_browser,
    timeout,
    analytics,
    insecure,
    no_approve_prompt,
    outlier_threshold,
    embeddings,
    quiet,
):
    """Review RUN (a run directory or a `spotreview bundle` zip) in Renumics Spotlight.

    Runs until Ctrl-C or --timeout, then asks whether to approve a run (or, with --compare,
    the comparison) for export.
    """
    result = spotreview.review(
        run,
        follow=follow,
        image_set=image_set,
        layout=layout_file,
        host=host,
        port=port,
        open_browser=not no_browser,
        timeout=timeout,
        analytics=analytics,
        insecure=insecure,
        quiet=quiet,
        outlier_threshold=outlier_threshold,
        embeddings=embeddings,
        compare=compare,
    )
    if not result.url:
        click.echo("review ended: no snapshot appeared before --timeout")
        return
    click.echo(f"review ended ({result.ended})")
    if result.bundle is not None:
        click.echo(
            f"exclusions made on this bundle are in {result.decisions}; "
            f"apply them with `spotreview exclude RUN --from {result.decisions}`"
        )
        return
    if compare is not None:
        return after_review(run, compare, layout=layout_file, ask=not no_approve_prompt and _interactive())
    run = spotreview.Run(run, image_set)
    if result.training in ("training", "stopped"):  # approval covers a finished run only
        click.echo(f"Not approved: the run is {'still training' if result.training == 'training' else 'unfinished'}")
        return
    status = spotreview.approval_status(run)
    if status.approved:  # approved from the page during the review: nothing to ask
        click.echo(status.message)
        return
    if no_approve_prompt or not _interactive() or not click.confirm(f"Approve {run.label} for export?"):
        click.echo(f"Not approved; {_later(run)}")
        return
    click.echo(format_approved(spotreview.approve(run, layout=layout_file)))


@click.command("exclude")
@click.argument("run", type=click.Path(exists=True))
@click.argument("ids", nargs=-1)
@click.option("--reason", default=None, help="Why these images are excluded.")
@click.option("--clear", is_flag=True, help="Remove the given ids from the exclusions (all when none given).")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Apply a bundle's decisions file (REVIEW.decisions.json) to RUN.",
)
@IMAGE_SET
def exclude_cmd(run, ids, reason, clear, from_file, image_set):
    """Exclude evaluation images (ids from the review table) from RUN, or --clear them.

    RUN may be a review bundle (.zip): the exclusions then go to REVIEW.decisions.json
    beside it, which `spotreview exclude RUN --from REVIEW.decisions.json` applies.
    """
    if from_file is not None and (ids or clear):
        raise click.UsageError("--from takes no ids and no --clear")
    result = spotreview.exclude(run_view(run, image_set), ids, reason=reason, clear=clear, from_file=from_file)
    done = f"applied {from_file}" if from_file else f"{'cleared' if clear else 'excluded'} {len(ids) if ids else 'all'}"
    click.echo(f"{done}; {len(result.exclusions)} image(s) now excluded in {result.where}")


@click.command("bundle")
@RUN
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The bundle to write (.zip).")
@LAYOUT
@THRESHOLD
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@IMAGE_SET
@COMPARE
def bundle_cmd(run, out, layout_file, outlier_threshold, force, image_set, compare):
    """Write RUN's review (table, images, layout, summary, approval) as one zip for a teammate
    (with --compare, the comparison's)."""
    path = spotreview.write_bundle(
        run_view(run, image_set),
        out,
        layout=layout_file,
        outlier_threshold=outlier_threshold,
        force=force,
        compare=compare,
    )
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it anywhere with `spotreview review {path}`")


@click.command("approve")
@RUN
@click.option("--by", default=None, help="Who approves (default: the OS user).")
@LAYOUT
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@IMAGE_SET
@COMPARE
def approve_cmd(run, by, layout_file, yes, image_set, compare):
    """Record that RUN's analysis, exclusions and layout are approved for export (with
    --compare, that the comparison of RUN with RUN_B is, for `spotreview compare`)."""
    run = run_view(run, image_set)
    if compare is not None:
        return approve_pair(run, compare, by=by, layout=layout_file, ask=not yes and _interactive())
    analysis = spotreview.load_analysis(run)  # loaded (and checked) once for what is shown and recorded
    preview = spotreview.approval_preview(run, by=by, layout=layout_file, analysis=analysis)
    click.echo(format_approval_preview(run, preview))
    if not yes and _interactive() and not click.confirm("Approve?"):
        click.echo(f"Not approved; {_later(run)}")
        return
    click.echo(format_approved(spotreview.approve(run, by=preview.by, layout=layout_file, analysis=analysis)))


@click.command("status")
@RUN
@IMAGE_SET
@click.option("--follow", is_flag=True, help="Print a line per new snapshot until training ends (or --timeout).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --follow: stop after this many seconds.",
)
def status_cmd(run, image_set, follow, timeout):
    """Snapshots, first/last metrics, exclusions and approval state of RUN."""
    run = run_view(run, image_set)
    if not follow:
        click.echo(format_status(spotreview.run_status(run)))
        return
    try:
        for update in spotreview.follow(run, timeout=timeout):
            for line in format_follow(update):
                click.echo(line)
    except KeyboardInterrupt:
        click.echo("stopped following")


@click.group("layout")
def layout_group():
    """Spotlight layouts, shareable as files."""


@layout_group.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def layout_save_cmd(file, force):
    """Write the default review layout to FILE (edit it, or use it with --layout)."""
    path = spotreview.save_layout(file, force=force)
    click.echo(f"wrote {path}; use it with `spotreview review RUN --layout {path}`")
