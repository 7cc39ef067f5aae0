"""The ``spotreview`` command line: parse, call one library function, report.

Heavy libraries are imported inside the commands so ``spotreview --help`` is instant.
Library errors (``SpotreviewError``) become one ``Error: ...`` line and exit code 1, and
the library's log messages (``logging``, logger ``spotreview``) are shown on stderr as
plain lines, warnings prefixed ``warning:``. Defaults come from :mod:`spotreview.defaults`.
"""

from __future__ import annotations

import gc
import logging
import sys

import click

from . import __version__
from . import defaults as D
from .children import exit_on_sigterm
from .errors import SpotreviewError
from .memory import keep_freed_memory
from .threads import idle_blas_threads_sleep
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
        except OSError as e:  # a file problem no check foresaw: still one line, naming the file
            raise click.ClickException(f"{e.strerror or e}: {e.filename or 'a file of the run'}") from None
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
LAYOUT = click.option("--layout", "layout_file", type=click.Path(dir_okay=False), default=None,
                      help="Spotlight layout file (default: the built-in layout, as in layouts/review.json).")


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
@click.option("--compile", "torch_compile", type=click.Choice(D.COMPILE_MODES), default=D.COMPILE_MODES[0],
              show_default=True, help="torch.compile the models; auto: not at present, it was measured slower on a bf16 CPU and "
              "not worth its compile time on a GPU (compiled graphs are cached in ~/.cache/spotreview).")
@QUIET
def embed_cmd(run, dataset, images_dir, eval_size, base_model, processor, overwrite, device, precision, batch_size,
              torch_compile, quiet):
    """Embed the eval images at every checkpoint-STEP of RUN (or any folder of HF checkpoints).

    Also writes log.csv from the newest trainer_state.json when RUN has none.
    """
    from .embedding import embed

    done = embed(run, dataset=dataset, images=images_dir, eval_size=eval_size, base_model=base_model,
                 processor=processor, overwrite=overwrite, device=device, precision=precision,
                 batch_size=batch_size, torch_compile=torch_compile, quiet=quiet)
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


from . import cli_review  # noqa: E402,F401  (registers review, exclude, bundle, approve, status, layout)


def main() -> None:
    # CPython's cycle collector walks the objects torch & co. create on import, many times over
    # while they import and all of them once more at exit: ~0.5 s of an `analyze` here.
    # spotreview makes few reference cycles, so young objects are collected less often, and
    # whatever is alive at exit is frozen out of the final collection.
    gc.set_threshold(50_000, 20, 20)
    keep_freed_memory()  # fewer page faults: every command's large arrays reuse freed blocks
    idle_blas_threads_sleep()  # numpy's idle BLAS threads leave the cores to torch's
    exit_on_sigterm()  # SIGTERM unwinds: temporary files, render workers, Spotlight cleaned up
    try:
        cli(prog_name="spotreview")
    finally:
        gc.freeze()
