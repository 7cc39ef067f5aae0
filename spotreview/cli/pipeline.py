"""The pipeline's commands: finetune, embed, analyze, export. Each parses, calls one library
function and reports."""

from __future__ import annotations

import click

import spotreview
from spotreview import defaults as D
from spotreview.cli.format import format_embedded, format_finetuned, format_table
from spotreview.cli.options import DEVICE, EVAL_SIZE, IMAGE_SET, QUIET, RECORD_TRAIN, RUN, frame_options, run_view
from spotreview.util.text import plural


@click.command("finetune")
@click.option(
    "--out", default=D.RUN_DIR, show_default=True, type=click.Path(file_okay=False), help="Run directory to create."
)
@click.option(
    "--model", default=None, help="Hub id or save_pretrained directory (default: a small ViT, random init, offline)."
)
@click.option(
    "--dataset",
    default=D.DATASET,
    show_default=True,
    help="digits, a hub dataset name, a save_to_disk directory or an image folder (one sub-folder per class).",
)
@EVAL_SIZE
@click.option(
    "--save-steps",
    type=click.IntRange(min=1),
    default=D.SAVE_STEPS,
    show_default=True,
    help="Record a snapshot every this many optimizer steps (plus step 0 and the last step).",
)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=D.EPOCHS, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=D.TRAIN_BATCH_SIZE, show_default=True)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Default: 1e-3 for the built-in ViT, 5e-5 for a pretrained --model.",
)
@click.option("--seed", type=int, default=D.SEED, show_default=True)
@click.option(
    "--keep-checkpoints",
    is_flag=True,
    help="Keep a checkpoint-STEP directory per snapshot, and checkpoint-0 (before fine-tuning).",
)
@click.option(
    "--record-train",
    type=RECORD_TRAIN,
    default=None,
    help="Also record a seeded sample of N training images (or all) at every snapshot, "
    "reviewed with `--set train` (one more forward pass over them per snapshot).",
)
@DEVICE
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a run already in --out (an unfinished one made with the same options resumes without).",
)
@QUIET
def finetune_cmd(**options):
    """Fine-tune an image classifier, recording the eval embeddings at step 0 and every save."""
    done = spotreview.finetune(**options)  # Click's parameters are named as finetune's
    click.echo(format_finetuned(done))
    click.echo(f"Next: spotreview analyze {done.run.root}")


@click.command("embed")
@RUN
@click.option(
    "--dataset",
    default=None,
    help="For a folder without eval.csv: embed this dataset's evaluation split (test or validation; "
    "without one, a seeded split of train) - a name, save_to_disk dir or image folder.",
)
@click.option(
    "--images",
    default=None,
    type=click.Path(file_okay=False),
    help="For a folder without eval.csv: embed every image in this folder (sub-folders = classes).",
)
@EVAL_SIZE
@click.option(
    "--base-model", default=None, help="The model before fine-tuning (directory or hub id), embedded as step 0."
)
@click.option(
    "--processor",
    default=None,
    help="Image processor (directory or hub id) when neither RUN nor its checkpoints have one.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Start RUN's evaluation set afresh (removes its embeddings, analysis and approval).",
)
@DEVICE
@click.option(
    "--precision",
    type=click.Choice(D.PRECISIONS),
    default=D.PRECISION,
    show_default=True,
    help="auto: bf16 where the hardware runs bf16 natively (CUDA, AMX/AVX512-BF16 CPUs), else int8 linear "
    "layers on CPUs with VNNI (AVX-512 or AVX-VNNI), else fp32. int8: CPU only; cosine >= 0.99 to fp32 (tested).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=D.EMBED_BATCH_SIZE, show_default=True)
@click.option(
    "--compile",
    "torch_compile",
    is_flag=True,
    help="torch.compile the models (compiled graphs are cached in ~/.cache/spotreview).",
)
@QUIET
def embed_cmd(run, **options):
    """Embed the eval images at every checkpoint-STEP of RUN (or any folder of HF checkpoints).

    Also writes log.csv from the newest trainer_state.json when RUN has none.
    """
    done = spotreview.embed(run, **options)
    click.echo(format_embedded(done))
    click.echo(f"{len(done.snapshots)} snapshots in all. Next: spotreview analyze {run.root}")


@click.command("analyze")
@RUN
@click.option(
    "--align",
    type=click.Choice(D.ALIGN_MODES),
    default=D.ALIGN,
    show_default=True,
    help="Rotate/reflect every snapshot's 2-D PCA onto the final snapshot, onto the one before, or not at all.",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=D.TOP_K, show_default=True, help="Outliers listed per snapshot."
)
@click.option(
    "--confidence-threshold",
    type=click.FloatRange(0, 1),
    default=D.CONFIDENCE_THRESHOLD,
    show_default=True,
    help="Data map: an image not ambiguous is easy from this mean probability of its label, hard to learn below it.",
)
@click.option(
    "--variability-threshold",
    type=click.FloatRange(0, 1),
    default=D.VARIABILITY_THRESHOLD,
    show_default=True,
    help="Data map: from this standard deviation of the probability of its label an image is ambiguous.",
)
@QUIET
def analyze_cmd(run, **options):
    """Outlier scores, aligned 2-D projections and training dynamics of every snapshot (incremental),
    for the evaluation set and, where recorded, the training set."""
    result = spotreview.analyze(run, **options)  # Click's parameters are named as analyze's
    done, total = len(result.recomputed), len(result.steps)
    redone = f"{done} of {total} snapshots computed" + (f", {total - done} unchanged" if done < total else "")
    click.echo(f"{format_table(result)}\n\n{redone}; results in {result.run.analysis_dir}")
    train = " (the training images: --set train)" if "train" in run.image_sets() else ""
    click.echo(f"Next: spotreview review {run.root}{train}")


def _issue_name(ctx, param, value):
    """--highlight-issue's NAME, checked while parsing: an unknown one is a usage error."""
    try:
        return None if value is None else spotreview.issue_key(value)
    except spotreview.SpotreviewError as e:
        raise click.BadParameter(str(e)) from None


@click.command("export")
@RUN
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Animation file: .gif (default RUN/animation.gif), .mp4 or .html.",
)
@frame_options("snapshots", "Outliers on each frame's leaderboard.")
@click.option(
    "--still",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write one frame as FILE.png instead of the animation (add --out for both).",
)
@click.option(
    "--still-step", type=int, default=None, help="Training step of the --still frame (default: the last snapshot)."
)
@click.option(
    "--highlight",
    "highlight",
    multiple=True,
    metavar="ID",
    help="Ring and label this image in every frame; repeat it, or give ids separated by commas.",
)
@click.option(
    "--highlight-issue",
    metavar="NAME",
    default=None,
    callback=_issue_name,
    help="Ring the images of this issue group of the review in every frame: likely-mislabelled, "
    "hard-to-learn, forgotten, learned-late, persistent-outliers, emerging-outliers or largest-movers.",
)
@click.option(
    "--html-player",
    type=click.Choice(D.HTML_PLAYERS),
    default=D.HTML_PLAYER,
    show_default=True,
    help=".html: the interactive player, or matplotlib's over the frames.",
)
@click.option("--force", is_flag=True, help="Export even if RUN is not approved (recorded).")
@IMAGE_SET
@QUIET
def export_cmd(run, highlight, image_set, **options):
    """Render RUN's approved analysis as an animation (GIF, MP4 or HTML player)."""
    highlight = [i.strip() for value in highlight for i in value.split(",") if i.strip()]
    done = spotreview.export(run_view(run, image_set), highlight=highlight, **options)
    if done.out:
        click.echo(f"wrote {done.out} ({plural(done.frames, 'frame')})")
    if done.still:
        click.echo(f"wrote {done.still}")
    if done.highlight_issue:
        issue = done.highlight_issue
        click.echo(f"ringed {plural(len(issue['ids']), 'image')} of the issue group {issue['title']!r}")
    if done.forced:
        click.echo(f"forced: not approved ({done.approval['state']})")
