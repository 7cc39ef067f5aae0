"""Errors a user can fix. The CLI prints them as one line (``Error: ...``) and exits 1."""


class SpotreviewError(Exception):
    """Base class: the message says what was found, what was expected and what to do."""


class RunDirError(SpotreviewError):
    """The run directory is missing, empty or does not hold what a stage needs."""


class DataError(SpotreviewError):
    """The images or labels cannot be used."""


class ModelError(SpotreviewError):
    """A model or checkpoint cannot be loaded or is not an image model."""


class AnalysisError(SpotreviewError):
    """Embeddings cannot be analysed (shapes differ, NaN/inf, too few images)."""


class ReviewError(SpotreviewError):
    """Spotlight, layout or approval problems."""


class ExportError(SpotreviewError):
    """The animation cannot be rendered or written."""


def first_line(e: BaseException) -> str:
    """The first line of a library exception's message, for a one-line error of our own."""
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__).rstrip(".")
