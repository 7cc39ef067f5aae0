"""The HTML player's thumbnails: sprite atlases (data URIs) that fit the page's size budget.

Every point's thumbnail is a tile of an atlas, row by row. An atlas of at most 256 colours
(digits, icons, greyscale scans) is a lossless PNG; photos are JPEG. When the atlases would
exceed the budget (large runs, noise-like images), the tiles get a lower JPEG quality and
then fewer pixels, larger tiles first: a 32 px tile at quality 75 reads better at the
hover's 96 px than a 48 px one at 30. The few images a reviewer looks at first (each
snapshot's leaderboard, the ``--highlight`` ids) then keep full-size tiles in a detail atlas.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np

ATLAS_PX = 2048  # atlas side at full tile size; browsers (Safari included) decode this size without trouble
_QUALITIES = (88, 75, 60, 45)  # JPEG qualities tried at each tile size, best first
_LAST_RESORT = 30  # the quality of the smallest tiles when nothing else fits


def atlases(thumbs: np.ndarray, budget: float, detail_rows=()) -> tuple[list[str], dict]:
    """``(uris, meta)``: data URIs of atlases holding every thumbnail of ``thumbs`` (n, T, T, 3)
    uint8 within ``budget`` bytes where any tile size allows, and the page's ``thumbs`` field:
    ``px`` (tile side in the atlases), ``cols`` (tiles per atlas row and column), ``count``
    (atlases of every point) and ``detail`` (null, or ``{"rows", "px", "cols"}``: full-size
    tiles of ``detail_rows``, in the atlases after ``count``), when the tiles were reduced."""
    n, t = thumbs.shape[:2]
    cols = max(1, ATLAS_PX // t)
    sheets = _sheets(thumbs, cols)
    plain = [_few_colours(s) for s in sheets]
    uris, px, quality = [], t, _QUALITIES[0]
    for px, quality in _ladder(t):
        if _estimate(sheets, plain, n, px, quality, t) > budget:
            continue
        uris = [_encode(_shrunk(s, px, t), p, quality) for s, p in zip(sheets, plain)]
        if sum(map(len, uris)) <= budget:
            break
    else:  # nothing fits: the smallest tiles at the lowest quality
        uris = [_encode(_shrunk(s, px, t), p, quality) for s, p in zip(sheets, plain)]
    meta = {"px": px, "cols": cols, "count": len(uris), "detail": None}
    reduced = px < t or (quality < _QUALITIES[0] and not all(plain))
    rows = sorted({int(r) for r in detail_rows})
    if reduced and rows:
        detail = _sheets(thumbs[rows], cols)
        uris += [_encode(s, _few_colours(s), _QUALITIES[0]) for s in detail]
        meta["detail"] = {"rows": rows, "px": t, "cols": cols}
    return uris, meta


def _ladder(t: int):
    """(tile side, JPEG quality) candidates, the most faithful first."""
    sides = [t] + [s for s in (round(t * 2 / 3), t // 2, t // 3) if 12 <= s < t]
    for side in sides:
        for quality in _QUALITIES:
            yield side, quality
    yield sides[-1], _LAST_RESORT


def _sheets(thumbs: np.ndarray, cols: int) -> list[np.ndarray]:
    """(rows * T, cols * T, 3) uint8 images of ``cols * cols`` tiles each, row by row, white filled."""
    n, t = thumbs.shape[:2]
    per, out = cols * cols, []
    for start in range(0, n, per):
        chunk = thumbs[start : start + per]
        rows = math.ceil(len(chunk) / cols)
        sheet = np.full((rows * cols, t, t, 3), 255, np.uint8)
        sheet[: len(chunk)] = chunk
        out.append(sheet.reshape(rows, cols, t, t, 3).swapaxes(1, 2).reshape(rows * t, cols * t, 3))
    return out


def _shrunk(sheet: np.ndarray, px: int, t: int) -> np.ndarray:
    """The sheet with its ``t`` px tiles made ``px`` px; a box filter keeps each tile's pixels apart."""
    if px == t:
        return sheet
    from PIL import Image

    h, w = sheet.shape[0] // t * px, sheet.shape[1] // t * px
    return np.asarray(Image.fromarray(sheet).resize((w, h), Image.BOX))


def _estimate(sheets: list[np.ndarray], plain: list[bool], n: int, px: int, quality: int, t: int) -> float:
    """Bytes of all atlases at (px, quality), from the first sheet's encoding."""
    first = _encode(_shrunk(sheets[0], px, t), plain[0], quality)
    tiles = min(n, (sheets[0].shape[0] // t) * (sheets[0].shape[1] // t))
    return len(first) * n / tiles


def _encode(sheet: np.ndarray, plain: bool, quality: int) -> str:
    from PIL import Image

    fmt, kwargs = ("PNG", {}) if plain else ("JPEG", {"quality": quality})
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format=fmt, **kwargs)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _few_colours(sheet: np.ndarray, limit: int = 256) -> bool:
    """Whether an (H, W, 3) uint8 image has at most ``limit`` distinct colours."""
    flat = sheet.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    sample = packed[:: max(1, len(packed) // 20_000)]  # a photo fails here, cheaply
    return len(np.unique(sample)) <= limit and len(np.unique(packed)) <= limit
