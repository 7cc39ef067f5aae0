"""The ``spotreview`` command line: parse, call one library function, report.

Heavy libraries are imported inside the commands so ``spotreview --help`` is instant.
Library errors (``SpotreviewError``) become one ``Error: ...`` line and exit code 1, and
the library's log messages (``logging``, logger ``spotreview``) are shown on stderr as
plain lines, warnings prefixed ``warning:``. Defaults come from :mod:`spotreview.defaults`.
"""

from __future__ import annotations

import logging
import sys

import click

from . import __version__
from . import defaults as D
from .errors import SpotreviewError
from .text import plural


class _Echo(logging.Handler):
    """A library log record as one line on stderr, without breaking a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        tqdm.write(prefix + record.getMessage(), file=sys.stderr)


class _Group(click.Group):
    """Shows library logs and turns library errors into one-line Click errors (no traceback)."""

    def invoke(self, ctx):
        logger, handler = logging.getLogger("spotreview"), _Echo()
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # the library logs INFO only when not asked to be quiet
        try:
            return super().invoke(ctx)
        except SpotreviewError as e:
            raise click.ClickException(str(e)) from None
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


class _RunType(click.Path):
    """The RUN argument: an existing directory, converted to a ``Run``."""

    name = "run"

    def convert(self, value, param, ctx):
        from .rundir import Run

        return Run(super().convert(value, param, ctx)).require()  # a RunDirError is one line


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotreview")
def cli():
    """Watch a model's embeddings evolve while it is fine-tuned.

    finetune -> embed -> analyze -> review (Spotlight, approve) -> export
    """


RUN = click.argument("run", type=_RunType(file_okay=False))
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


# --- finetune / embed (foundation) -------------------------------------------------

DEVICE = click.option("--device", type=click.Choice(D.DEVICES), default=D.DEVICES[0], show_default=True,
                      help="auto: CUDA when available, else CPU.")
EVAL_SIZE = click.option("--eval-size", type=click.IntRange(min=1), default=None, help="A seeded, stratified "
                         "subset of this many evaluation images (default: the whole test/validation split; a "
                         "dataset with only train gets this many images, default 20 %, split off for evaluation).")


@cli.command("finetune")
@click.option("--out", default=D.RUN_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Run directory to create.")
@click.option("--model", default=None,
              help="Hub id or save_pretrained directory (default: a small ViT, random init, offline).")
@click.option("--dataset", default=D.DATASET, show_default=True,
              help="digits, a hub dataset name, a save_to_disk directory or an image folder (one sub-folder per class).")
@EVAL_SIZE
@click.option("--save-steps", type=click.IntRange(min=1), default=D.SAVE_STEPS, show_default=True,
              help="Record a snapshot every this many optimizer steps (plus step 0 and the last step).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=D.EPOCHS, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=D.TRAIN_BATCH_SIZE, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Default: 1e-3 for the built-in ViT, 5e-5 for a pretrained --model.")
@click.option("--seed", type=int, default=D.SEED, show_default=True)
@click.option("--keep-checkpoints", is_flag=True,
              help="Keep a checkpoint-STEP directory per snapshot, and checkpoint-0 (before fine-tuning).")
@DEVICE
@click.option("--overwrite", is_flag=True,
              help="Replace a run already in --out (an unfinished one made with the same options resumes without).")
@QUIET
def finetune_cmd(out, model, dataset, eval_size, save_steps, epochs, batch_size, learning_rate, seed,
                 keep_checkpoints, device, overwrite, quiet):
    """Fine-tune an image classifier, recording the eval embeddings at step 0 and every save."""
    from .train import finetune

    done = finetune(out, model=model, dataset=dataset, eval_size=eval_size, save_steps=save_steps, epochs=epochs,
                    batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                    keep_checkpoints=keep_checkpoints, device=device, overwrite=overwrite, quiet=quiet)
    click.echo(done.describe())
    click.echo(f"Next: spotreview analyze {done.run.root}")


@cli.command("embed")
@RUN
@click.option("--dataset", default=None,
              help="For a folder without eval.csv: embed this dataset's evaluation split (test or validation; "
                   "without one, a seeded split of train) - a name, save_to_disk dir or image folder.")
@click.option("--images", "images_dir", default=None, type=click.Path(file_okay=False),
              help="For a folder without eval.csv: embed every image in this folder (sub-folders = classes).")
@EVAL_SIZE
@click.option("--base-model", default=None,
              help="The model before fine-tuning (directory or hub id), embedded as step 0.")
@click.option("--processor", default=None,
              help="Image processor (directory or hub id) when neither RUN nor its checkpoints have one.")
@click.option("--overwrite", is_flag=True,
              help="Start RUN's evaluation set afresh (removes its embeddings, analysis and approval).")
@DEVICE
@click.option("--precision", type=click.Choice(D.PRECISIONS), default=D.PRECISIONS[0], show_default=True,
              help="auto: bf16 autocast where the hardware runs bf16 natively (CUDA, AMX/AVX512-BF16 CPUs), else fp32.")
@click.option("--batch-size", type=click.IntRange(min=1), default=D.EMBED_BATCH_SIZE, show_default=True)
@QUIET
def embed_cmd(run, dataset, images_dir, eval_size, base_model, processor, overwrite, device, precision, batch_size,
              quiet):
    """Embed the eval images at every checkpoint-STEP of RUN (or any folder of HF checkpoints).

    Also writes log.csv from the newest trainer_state.json when RUN has none.
    """
    from .embedding import embed

    done = embed(run, dataset=dataset, images=images_dir, eval_size=eval_size, base_model=base_model,
                 processor=processor, overwrite=overwrite, device=device, precision=precision,
                 batch_size=batch_size, quiet=quiet)
    total = run.snapshots()
    if done:
        click.echo(f"Embedded {len(done)} snapshots (steps {', '.join(map(str, done))}) into {run.embeddings_dir}")
    else:
        click.echo(f"Nothing to embed: all {len(total)} snapshots in {run.embeddings_dir} are up to date")
    click.echo(f"{len(total)} snapshots in all. Next: spotreview analyze {run.root}")


@cli.command("analyze")
@RUN
@click.option("--align", type=click.Choice(D.ALIGN_MODES), default=D.ALIGN, show_default=True,
              help="Rotate/reflect every snapshot's 2-D PCA onto the final snapshot, onto the one before, or not at all.")
@click.option("--top-k", type=click.IntRange(min=1), default=D.TOP_K, show_default=True,
              help="Outliers listed per snapshot.")
@QUIET
def analyze_cmd(run, align, top_k, quiet):
    """Outlier scores and aligned 2-D projections of every snapshot (incremental)."""
    from .analysis import analyze
    from .analysis_store import format_table

    result = analyze(run, align=align, top_k=top_k, quiet=quiet)
    done, total = len(result.recomputed), len(result.steps)
    redone = f"{done} of {total} snapshots computed" + (f", {total - done} unchanged" if done < total else "")
    click.echo(f"{format_table(result)}\n\n{redone}; results in {result.run.analysis_dir}")
    click.echo(f"Next: spotreview review {run.root}")


# --- review / exclude / approve / status / layout -------------------------------------

THRESHOLD = click.option("--outlier-threshold", type=click.IntRange(min=1), default=None, metavar="RANK",
                         help="outlier_status: an outlier at rank <= RANK (default: max(top-k, 1% of images)).")
LAYOUT = click.option("--layout", "layout_file", type=click.Path(dir_okay=False), default=None,
                      help="Spotlight layout file (default: the built-in layout, as in layouts/review.json).")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _later(run) -> str:
    return f"approve it later with `spotreview approve {run}`"


def _approved(record: dict) -> None:
    click.echo(f"Approved by {record['by']} at {record['at']} (digest {record['digest'][:12]})")


@cli.command("review")
@click.argument("run", type=click.Path(exists=True))
@LAYOUT
@click.option("--host", default=D.HOST, show_default=True, help="Address to serve on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--analytics", is_flag=True, help="Allow Spotlight's usage analytics (off by default).")
@click.option("--insecure", is_flag=True, help="Serve a non-local --host without TLS (trusted networks only).")
@click.option("--no-approve-prompt", is_flag=True, help="Do not ask to approve when the review ends.")
@THRESHOLD
@click.option("--embeddings", is_flag=True,
              help="Add the last snapshot's embedding (for Spotlight's similarity map; costs memory).")
@QUIET
def review_cmd(run, layout_file, host, port, no_browser, timeout, analytics, insecure,
               no_approve_prompt, outlier_threshold, embeddings, quiet):
    """Review RUN (a run directory or a `spotreview bundle` zip) in Renumics Spotlight.

    Runs until Ctrl-C or --timeout, then asks whether to approve a run for export.
    """
    from .approval import approve
    from .rundir import Run
    from .server import review

    result = review(run, layout=layout_file, host=host, port=port, open_browser=not no_browser,
                    timeout=timeout, analytics=analytics, insecure=insecure, quiet=quiet,
                    outlier_threshold=outlier_threshold, embeddings=embeddings)
    click.echo(f"review ended ({result['ended']})")
    if result["bundle"]:
        click.echo(f"exclusions made on this bundle are in {result['bundle']}; "
                   f"apply them with `spotreview exclude RUN --from {result['bundle']}`")
        return
    run = Run(run)
    if no_approve_prompt or not _interactive() or not click.confirm(f"Approve {run.root} for export?"):
        click.echo(f"Not approved; {_later(run.root)}")
        return
    _approved(approve(run, layout=layout_file))


@cli.command("exclude")
@click.argument("run", type=click.Path(exists=True))
@click.argument("ids", nargs=-1)
@click.option("--reason", default=None, help="Why these images are excluded.")
@click.option("--clear", is_flag=True, help="Remove the given ids from the exclusions (all when none given).")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), default=None,
              help="Apply a bundle's decisions file (REVIEW.decisions.json) to RUN.")
def exclude_cmd(run, ids, reason, clear, from_file):
    """Exclude evaluation images (ids from the review table) from RUN, or --clear them.

    RUN may be a review bundle (.zip): the exclusions then go to REVIEW.decisions.json
    beside it, which `spotreview exclude RUN --from REVIEW.decisions.json` applies.
    """
    from .bundle import exclude_anywhere

    if from_file is not None and (ids or clear):
        raise click.UsageError("--from takes no ids and no --clear")
    where, now = exclude_anywhere(run, ids, reason=reason, clear=clear, from_file=from_file)
    done = f"{'cleared' if clear else 'excluded'} {len(ids) if ids else 'all'}"
    click.echo(f"{f'applied {from_file}' if from_file else done}; {len(now)} image(s) now excluded in {where}")


@cli.command("bundle")
@RUN
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The bundle to write (.zip).")
@LAYOUT
@THRESHOLD
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def bundle_cmd(run, out, layout_file, outlier_threshold, force):
    """Write RUN's review (table, images, layout, summary, approval) as one zip for a teammate."""
    from .bundle import write_bundle

    path = write_bundle(run, out, layout=layout_file, outlier_threshold=outlier_threshold, force=force)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); "
               f"open it anywhere with `spotreview review {path}`")


@cli.command("approve")
@RUN
@click.option("--by", default=None, help="Who approves (default: the OS user).")
@LAYOUT
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def approve_cmd(run, by, layout_file, yes):
    """Record that RUN's analysis, exclusions and layout are approved for export."""
    from .analysis_store import load_analysis
    from .approval import approval_parts, approve, format_parts, os_user

    analysis = load_analysis(run)  # loaded (and checked) once for what is shown and recorded
    parts = approval_parts(run, layout=layout_file, analysis=analysis)
    click.echo(format_parts(run, parts, by=by or os_user()))
    if not yes and _interactive() and not click.confirm("Approve?"):
        click.echo(f"Not approved; {_later(run.root)}")
        return
    _approved(approve(run, by=by, layout=layout_file, analysis=analysis))


@cli.command("status")
@RUN
def status_cmd(run):
    """Snapshots, first/last metrics, exclusions and approval state of RUN."""
    from .status import format_status, run_status

    click.echo(format_status(run_status(run)))


@cli.group("layout")
def layout_group():
    """Spotlight layouts, shareable as files."""


@layout_group.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def layout_save_cmd(file, force):
    """Write the default review layout to FILE (edit it, or use it with --layout)."""
    from .layouts import save_layout

    path = save_layout(file, force=force)
    click.echo(f"wrote {path}; use it with `spotreview review RUN --layout {path}`")


@cli.command("export")
@RUN
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Animation file: .gif (default RUN/animation.gif), .mp4 or .html.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frames per second (default: 2 snapshots per second, whatever --tween; at most 50).")
@click.option("--size", default=None, metavar="WxH", help="Frame size in pixels (default 1280x720).")
@click.option("--dpi", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Text and marker scale (default: as designed for the frame size).")
@click.option("--tween", type=click.IntRange(min=0), default=0, show_default=True,
              help="Interpolated frames between consecutive snapshots.")
@click.option("--top-k", type=click.IntRange(min=1), default=D.TOP_K, show_default=True,
              help="Outliers on each frame's leaderboard.")
@click.option("--still", type=click.Path(dir_okay=False), default=None,
              help="Write one frame as FILE.png instead of the animation (add --out for both).")
@click.option("--still-step", type=int, default=None,
              help="Training step of the --still frame (default: the last snapshot).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes rendering frames (default: 2 for 16+ frames on 2+ cores, Linux).")
@click.option("--highlight", "highlight", multiple=True, metavar="ID",
              help="Ring and label this image in every frame; repeat it, or give ids separated by commas.")
@click.option("--html-player", type=click.Choice(["interactive", "frames"]), default="interactive",
              show_default=True, help=".html: the interactive player, or matplotlib's over the frames.")
@click.option("--force", is_flag=True, help="Export even if RUN is not approved (recorded).")
@QUIET
def export_cmd(run, out, fps, size, dpi, tween, top_k, still, still_step, workers, highlight, html_player,
               force, quiet):
    """Render RUN's approved analysis as an animation (GIF, MP4 or HTML player)."""
    from .animation import export

    done = export(run, out, fps=fps, size=size, dpi=dpi, tween=tween, top_k=top_k, force=force,
                  still=still, still_step=still_step, workers=workers, quiet=quiet, html_player=html_player,
                  highlight=[i.strip() for value in highlight for i in value.split(",") if i.strip()])
    if done.out:
        click.echo(f"wrote {done.out} ({plural(done.frames, 'frame')})")
    if done.still:
        click.echo(f"wrote {done.still}")
    if done.forced:
        click.echo(f"forced: not approved ({done.approval['state']})")


def main() -> None:
    cli(prog_name="spotreview")
