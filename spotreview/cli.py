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

# --- analyze ------------------------------------------------------------------------

# --- review / exclude / approve / status / layout -------------------------------------

# --- export ---------------------------------------------------------------------------


def main() -> None:
    cli(prog_name="spotreview")


if __name__ == "__main__":
    main()
