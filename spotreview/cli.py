"""The ``spotreview`` command line: parse, call one library function, report.

Heavy libraries are imported inside the commands so ``spotreview --help`` is instant.
Library errors (``SpotreviewError``) become one ``Error: ...`` line and exit code 1.
"""

from __future__ import annotations

import click

from . import __version__
from .errors import SpotreviewError


class _Group(click.Group):
    """Turns library errors into one-line Click errors (no traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpotreviewError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotreview")
def cli():
    """Watch a model's embeddings evolve while it is fine-tuned.

    finetune -> embed -> analyze -> review (Spotlight, approve) -> export
    """


def _run_path(value: str):
    from .rundir import Run

    return Run(value).require()


RUN = click.argument("run", type=click.Path(file_okay=False))
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


# --- finetune / embed (foundation) -------------------------------------------------

DEVICE = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="auto: CUDA when available, else CPU.",
)
EVAL_SIZE = click.option(
    "--eval-size", type=click.IntRange(min=1), default=None,
    help="A seeded, stratified subset of this many evaluation images (default: the whole test split).",
)


@cli.command("finetune")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Run directory to create.")
@click.option("--model", default=None,
              help="Hub id or save_pretrained directory (default: a small ViT, random init, offline).")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, a hub dataset name, a save_to_disk directory or an image folder (one sub-folder per class).")
@EVAL_SIZE
@click.option("--save-steps", type=click.IntRange(min=1), default=50, show_default=True,
              help="Record a snapshot every this many optimizer steps (plus step 0 and the last step).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Default: 1e-3 for the built-in ViT, 5e-5 for a pretrained --model.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--keep-checkpoints", is_flag=True, help="Also keep a checkpoint-STEP directory per snapshot.")
@DEVICE
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@QUIET
def finetune_cmd(out, model, dataset, eval_size, save_steps, epochs, batch_size, learning_rate, seed,
                 keep_checkpoints, device, overwrite, quiet):
    """Fine-tune an image classifier, recording the eval embeddings at step 0 and every save."""
    from .train import finetune

    run = finetune(
        out, model=model, dataset=dataset, eval_size=eval_size, save_steps=save_steps, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, keep_checkpoints=keep_checkpoints,
        device=device, overwrite=overwrite, quiet=quiet,
    )
    m = run.read_manifest()
    steps = m["snapshots"]
    acc = " -> ".join(f"{m['accuracy'][str(s)]:.1%} (step {s})" for s in (steps[0], steps[-1])
                      if m["accuracy"].get(str(s)) is not None)
    click.echo(f"Fine-tuned {m['model']} on {m['dataset']} in {m['seconds']:.0f} s: "
               f"{len(steps)} snapshots (steps {steps[0]}..{steps[-1]}) of {m['num_images']} eval images")
    if acc:
        click.echo(f"Eval accuracy: {acc}")
    kept = f", {len(run.checkpoints())} checkpoints" if keep_checkpoints else ""
    click.echo(f"Run: {run.root} (embeddings/, log.csv, images/, eval.csv, manifest.json{kept})")
    click.echo(f"Next: spotreview analyze {run.root}")


@cli.command("embed")
@RUN
@click.option("--dataset", default=None,
              help="For a folder without eval.csv: embed this dataset's test split (name, save_to_disk dir or image folder).")
@click.option("--images", "images_dir", default=None, type=click.Path(file_okay=False),
              help="For a folder without eval.csv: embed every image in this folder (sub-folders = classes).")
@EVAL_SIZE
@DEVICE
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast where the hardware runs bf16 natively (CUDA, AMX/AVX512-BF16 CPUs), else fp32.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@QUIET
def embed_cmd(run, dataset, images_dir, eval_size, device, precision, batch_size, quiet):
    """Embed the eval images at every checkpoint-STEP of RUN (or any folder of HF checkpoints)."""
    from .embedding import embed

    done = embed(run, dataset=dataset, images=images_dir, eval_size=eval_size, device=device,
                 precision=precision, batch_size=batch_size, quiet=quiet)
    r = _run_path(run)
    total = r.snapshots()
    if done:
        click.echo(f"Embedded {len(done)} snapshots (steps {', '.join(map(str, done))}) into {r.embeddings_dir}")
    else:
        click.echo(f"Nothing to embed: all {len(total)} snapshots in {r.embeddings_dir} are up to date")
    click.echo(f"{len(total)} snapshots in all. Next: spotreview analyze {run}")

# --- analyze ------------------------------------------------------------------------


@cli.command("analyze")
@RUN
@click.option(
    "--align",
    type=click.Choice(["last", "previous", "none"]),
    default="last",
    show_default=True,
    help="Rotate/reflect every snapshot's 2-D PCA onto the final snapshot, onto the one before, or not at all.",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=8, show_default=True, help="Outliers listed per snapshot."
)
@QUIET
def analyze_cmd(run, align, top_k, quiet):
    """Outlier scores and aligned 2-D projections of every snapshot (incremental)."""
    from .analysis import analyze, format_table

    result = analyze(_run_path(run), align=align, top_k=top_k, quiet=quiet)
    done, total = len(result.recomputed), len(result.steps)
    redone = f"{done} of {total} snapshots computed" + (f", {total - done} unchanged" if done < total else "")
    click.echo(f"{format_table(result)}\n\n{redone}; results in {result.run.analysis_dir}")
    click.echo(f"Next: spotreview review {run}")


# --- review / exclude / approve / status / layout -------------------------------------

LAYOUT = click.option(
    "--layout",
    "layout_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Spotlight layout file (default: the built-in layout, as in layouts/review.json).",
)


def _interactive() -> bool:
    import sys

    return sys.stdin.isatty()


def _later(run) -> str:
    return f"approve it later with `spotreview approve {run}`"


@cli.command("review")
@RUN
@LAYOUT
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--analytics", is_flag=True, help="Allow Spotlight's usage analytics (off by default).")
@click.option("--insecure", is_flag=True,
              help="Serve a non-local --host without TLS (trusted networks only).")
@click.option("--no-approve-prompt", is_flag=True, help="Do not ask to approve when the review ends.")
@QUIET
def review_cmd(run, layout_file, host, port, no_browser, timeout, analytics, insecure,
               no_approve_prompt, quiet):
    """Review RUN's table in Renumics Spotlight (first vs last snapshot, outliers).

    Runs until Ctrl-C or --timeout, then asks whether to approve the run for export.
    """
    from .reviewing import approve, review

    _run_path(run)
    result = review(run, layout=layout_file, host=host, port=port, open_browser=not no_browser,
                    timeout=timeout, analytics=analytics, insecure=insecure, quiet=quiet)
    click.echo(f"review ended ({result['ended']})")
    if no_approve_prompt or not _interactive():
        click.echo(f"Not approved; {_later(run)}")
        return
    if click.confirm(f"Approve {run} for export?", default=False):
        record = approve(run, layout=layout_file)
        click.echo(f"Approved by {record['by']} at {record['at']} (digest {record['digest'][:12]})")
    else:
        click.echo(f"Not approved; {_later(run)}")


@cli.command("exclude")
@RUN
@click.argument("ids", nargs=-1)
@click.option("--reason", default=None, help="Why these images are excluded.")
@click.option("--clear", is_flag=True, help="Remove the given ids from the exclusions (all when none given).")
def exclude_cmd(run, ids, reason, clear):
    """Exclude evaluation images (ids from the review table) from RUN, or --clear them."""
    from .reviewing import exclude

    _run_path(run)
    now = exclude(run, ids, reason=reason, clear=clear)
    done = "cleared" if clear else "excluded"
    click.echo(f"{done} {len(ids) if ids else 'all'}; {len(now)} image(s) now excluded in {run}")


@cli.command("approve")
@RUN
@click.option("--by", default=None, help="Who approves (default: the OS user).")
@LAYOUT
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def approve_cmd(run, by, layout_file, yes):
    """Record that RUN's analysis, exclusions and layout are approved for export."""
    from .reviewing import approval_parts, approve, os_user

    _run_path(run)
    parts = approval_parts(run, layout=layout_file)
    excl = parts["exclusions"]
    first, last = parts["steps"]
    click.echo(f"Approving {run} for export:")
    click.echo(f"  analysis:   {parts['snapshots']} snapshot(s), steps {first} .. {last} "
               f"(sha256 {parts['parts']['analysis'][:12]})")
    click.echo(f"  exclusions: {len(excl)}" + (f" ({', '.join(list(excl)[:5])}"
               + (", ..." if len(excl) > 5 else "") + ")" if excl else ""))
    click.echo(f"  layout:     {parts['layout'] or 'default layout'}")
    click.echo(f"  by:         {by or os_user()}")
    if not yes and _interactive() and not click.confirm("Approve?", default=False):
        click.echo(f"Not approved; {_later(run)}")
        return
    record = approve(run, by=by, layout=layout_file)
    click.echo(f"Approved by {record['by']} at {record['at']} (digest {record['digest'][:12]})")


@cli.command("status")
@RUN
def status_cmd(run):
    """Snapshots, first/last metrics, exclusions and approval state of RUN."""
    from .reviewing import format_status, run_status

    _run_path(run)
    click.echo(format_status(run_status(run)))


@cli.group("layout")
def layout_group():
    """Spotlight layouts, shareable as files."""


@layout_group.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def layout_save_cmd(file, force):
    """Write the default review layout to FILE (edit it, or use it with --layout)."""
    from .reviewing import save_layout

    path = save_layout(file, force=force)
    click.echo(f"wrote {path}; use it with `spotreview review RUN --layout {path}`")


# --- export ---------------------------------------------------------------------------


@cli.command("export")
@RUN
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Animation file: .gif (default RUN/animation.gif), .mp4 or .html.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frames per second (default: 2 snapshots per second, whatever --tween; at most 50).")
@click.option("--size", default=None, metavar="WxH",
              help="Frame size in pixels (default 1280x720).")
@click.option("--dpi", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Text and marker scale (default: as designed for the frame size).")
@click.option("--tween", type=click.IntRange(min=0), default=0, show_default=True,
              help="Interpolated frames between consecutive snapshots.")
@click.option("--top-k", type=click.IntRange(min=1), default=8, show_default=True,
              help="Outliers on each frame's leaderboard.")
@click.option("--still", type=click.Path(dir_okay=False), default=None,
              help="Write one frame as FILE.png instead of the animation (add --out for both).")
@click.option("--still-step", type=int, default=None,
              help="Training step of the --still frame (default: the last snapshot).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes rendering frames (default: 2 for 16+ frames on 2+ cores, Linux).")
@click.option("--force", is_flag=True, help="Export even if RUN is not approved (recorded).")
@QUIET
def export_cmd(run, out, fps, size, dpi, tween, top_k, still, still_step, workers, force, quiet):
    """Render RUN's approved analysis as an animation (GIF, MP4 or HTML player)."""
    import json

    from .animation import export

    r = _run_path(run)
    export(r, out, fps=fps, size=size, dpi=dpi, tween=tween, top_k=top_k, force=force,
           still=still, still_step=still_step, workers=workers, quiet=quiet)
    # export.json says what this export wrote (animation, still or both) and if forced.
    record = json.loads(r.export_record.read_text(encoding="utf-8"))
    if record.get("out"):
        click.echo(f"wrote {record['out']} ({record['frames']} frames)")
    if record.get("still"):
        click.echo(f"wrote {record['still']}")
    if record.get("forced"):
        click.echo(f"forced: not approved ({record['approval']['state']})")


def main() -> None:
    cli(prog_name="spotreview")


if __name__ == "__main__":
    main()
