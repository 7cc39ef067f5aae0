"""Image tiles for the leaderboard and the HTML player's hover: an evaluation image letterboxed
on white inside a 1-pixel frame, or a blank tile where the image is missing or unreadable."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def thumbnail(path: Path, size: int) -> np.ndarray | None:
    """(size, size, 3) uint8: the image letterboxed on white, or None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGBA")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):  # PIL: broken PNG chunks
        return None
    inner = size - 2  # inside the 1-pixel frame
    scale = inner / max(im.size)
    # Shrink smoothly; enlarge small images (MNIST is 28 px) with crisp pixels.
    im = im.resize(
        (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
        Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST,
    )
    tile = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    tile.alpha_composite(im, ((size - im.width) // 2, (size - im.height) // 2))
    return _framed(np.array(tile.convert("RGB")))


def placeholder_tile(size: int) -> np.ndarray:
    return _framed(np.full((size, size, 3), 235, np.uint8))


def _framed(tile: np.ndarray) -> np.ndarray:
    """(T, T, 3) uint8 with a 1-pixel grey border, so every tile reads as a card."""
    tile[[0, -1], :] = 150
    tile[:, [0, -1]] = 150
    return tile
