"""Numbers and words for people: scores in significant digits, plurals, and a middle ellipsis
that keeps the end of an id (where ids differ: ``validation-…0123``)."""

from __future__ import annotations

import math
import re


def sig(x: float, digits: int = 3) -> str:
    """``x`` in ``digits`` significant digits: ``0.000123`` -> ``0.000123``, ``1.2e-05`` ->
    ``1.2e-5``, ``0.25`` -> ``0.25``; ``-`` when not finite."""
    x = float(x)
    if not math.isfinite(x):
        return "-"
    text = f"{x:.{digits}g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'-' if m[1] == '-' else ''}{m[2]}", text)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 frame``, ``2 frames``, ``0 frames`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def middle_ellipsis(text: str, n: int) -> str:
    """``text`` in at most ``n`` characters, cut in the middle so the distinguishing end stays:
    ``middle_ellipsis("validation-00123", 12) == "valid…-00123"``."""
    text = str(text)
    if len(text) <= n:
        return text
    if n <= 1:
        return "…"[:n]
    tail = n // 2  # the end gets the odd character: that is where ids differ
    head = n - 1 - tail
    return text[:head] + "…" + text[len(text) - tail :]


def end_ellipsis(text: str, n: int) -> str:
    """``text`` in at most ``n`` characters, cut at the end: ``end_ellipsis("airplane", 5) == "airp…"``."""
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"
