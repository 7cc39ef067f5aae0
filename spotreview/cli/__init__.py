"""The ``spotreview`` command line: parse, call one library function, report.

The group is built here from the command modules (:mod:`.pipeline`, :mod:`.review`,
:mod:`.compare`), which import only :mod:`.options`, :mod:`.format` and each other, never this
module. Commands call the public
API (``spotreview.X``, imported lazily by the package) so ``spotreview --help`` is instant,
and print the records it returns with :mod:`.format`. Library errors (``SpotreviewError``) become one
``Error: ...`` line and exit code 1, and the library's log messages (``logging``, logger
``spotreview``) are shown on stderr as plain lines, warnings prefixed ``warning:``. Defaults
come from :mod:`spotreview.defaults`.
"""

from __future__ import annotations

import gc

import click

from spotreview import __version__
from spotreview.cli import compare, pipeline, review
from spotreview.cli.options import _Group
from spotreview.util.process import exit_on_sigterm, idle_blas_threads_sleep, keep_freed_memory


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotreview")
def cli():
    """Watch a model's embeddings evolve while it is fine-tuned.

    finetune -> embed -> analyze -> review (Spotlight, approve) -> export
    """


for _command in (
    pipeline.finetune_cmd,
    pipeline.embed_cmd,
    pipeline.analyze_cmd,
    review.review_cmd,
    review.exclude_cmd,
    review.approve_cmd,
    review.status_cmd,
    review.bundle_cmd,
    review.layout_group,
    pipeline.export_cmd,
    compare.compare_cmd,
):
    cli.add_command(_command)


def main() -> None:
    # CPython's cycle collector walks the objects torch & co. create on import, many times over
    # while they import and all of them once more at exit (benchmarks/RESULTS.md). spotreview
    # makes few reference cycles, so young objects are collected less often, and whatever is
    # alive at exit is frozen out of the final collection.
    gc.set_threshold(50_000, 20, 20)
    keep_freed_memory()  # fewer page faults: every command's large arrays reuse freed blocks
    idle_blas_threads_sleep()  # numpy's idle BLAS threads leave the cores to torch's
    exit_on_sigterm()  # SIGTERM unwinds: temporary files, render workers, Spotlight cleaned up
    try:
        cli(prog_name="spotreview")
    finally:
        gc.freeze()
