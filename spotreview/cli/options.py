"""What every ``spotreview`` command shares: the group's error and log handling, and options."""

from __future__ import annotations

import logging
import os
import sys

import click

import spotreview
from spotreview import SpotreviewError
from spotreview import defaults as D


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
        return spotreview.Run(super().convert(value, param, ctx)).require()  # a RunDirError is one line


RUN = click.argument("run", type=_RunType(file_okay=False))
IMAGE_SET = click.option(
    "--set",
    "image_set",
    type=click.Choice(D.IMAGE_SETS),
    default=None,
    help="The image set: eval (default), or train where the run recorded training images (--record-train).",
)


def run_view(run, image_set: str | None):
    """RUN (a ``Run`` or a path) seen from ``--set``; a bundle (a file) takes no ``--set``."""
    if image_set is None:
        return run
    if not os.path.isdir(run):
        raise click.UsageError(f"--set applies to a run directory; {run} is a bundle, which holds one set already")
    return spotreview.Run(run, image_set).require()


class _RecordTrain(click.ParamType):
    """``--record-train``: a positive whole number of training images, or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value == "all" or isinstance(value, int):
            return value
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            self.fail(f"expected a positive whole number of training images or 'all', got {value!r}", param, ctx)
        return count


RECORD_TRAIN = _RecordTrain()
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
LAYOUT = click.option(
    "--layout",
    "layout_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Spotlight layout file (default: the built-in layout, as in layouts/review.json).",
)


DEVICE = click.option(
    "--device",
    type=click.Choice(D.DEVICES),
    default=D.DEVICE,
    show_default=True,
    help="auto: CUDA when available, else CPU.",
)
EVAL_SIZE = click.option(
    "--eval-size",
    type=click.IntRange(min=1),
    default=None,
    help="A seeded, stratified "
    "subset of this many evaluation images (default: the whole test/validation split; a "
    "dataset with only train gets this many images, default 20 %, split off for evaluation).",
)
THRESHOLD = click.option(
    "--outlier-threshold",
    type=click.IntRange(min=1),
    default=None,
    metavar="RANK",
    help="outlier_status: an outlier at rank <= RANK (default: max(top-k, 1% of images)).",
)


def frame_options(frames: str, top_k_help: str):
    """The options every animation command shares: ``--fps``, ``--size``, ``--dpi``,
    ``--tween``, ``--top-k`` and ``--workers``; ``frames`` names what the frames show
    ("snapshots", "key frames")."""
    options = (
        click.option(
            "--fps",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help=f"Frames per second (default: 2 {frames} per second, whatever --tween; at most 50).",
        ),
        click.option("--size", default=None, metavar="WxH", help="Frame size in pixels (default 1280x720)."),
        click.option(
            "--dpi",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Text and marker scale (default: as designed for the frame size).",
        ),
        click.option(
            "--tween",
            type=click.IntRange(min=0),
            default=D.TWEEN,
            show_default=True,
            help=f"Interpolated frames between consecutive {frames}.",
        ),
        click.option("--top-k", type=click.IntRange(min=1), default=D.TOP_K, show_default=True, help=top_k_help),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Processes rendering frames (default: 2 for 16+ frames on 2+ cores, Linux).",
        ),
    )

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply
