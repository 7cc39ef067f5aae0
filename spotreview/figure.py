"""The animation's figure: layout, class colours, fixed axis limits, and the :class:`Renderer`
that draws a frame of a :class:`spotreview.scene.Scene` by updating one figure's artists.

* left, the aligned 2-D embedding cloud coloured by class (legend below it), axes fixed
  across all frames, the top-k outliers ringed and numbered;
* right, a leaderboard of the top-k outliers of that snapshot as thumbnails with label
  and score, and the training loss revealed up to the snapshot's step.

The figure is built once per process and only its artists are updated per frame
(blitting); the frame is read straight from the Agg canvas buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SIZE = (1280, 720)
# The layout is designed at this size and dpi; other sizes scale the dpi so the frame
# looks the same, only sharper or smaller.
DESIGN_DPI = 100.0


@dataclass
class _Layout:
    """Axes rectangles in figure fractions (left, bottom, width, height)."""

    scatter: tuple
    board: list[tuple]  # one per leaderboard slot
    loss: tuple
    thumb_px: int


def frame_layout(size: tuple[int, int], top_k: int) -> _Layout:
    w, h = size
    cols = min(top_k, 4)
    rows = math.ceil(top_k / cols)
    # The right column: leaderboard on top, loss curve below.
    x0, x1 = 0.585, 0.985
    top, bottom = 0.855, 0.43
    cell_w = (x1 - x0) / cols
    cell_h = (top - bottom) / rows
    # Leave room for a caption line above and below each thumbnail.
    side = min(cell_w * w, (cell_h * h) - 34 * h / DEFAULT_SIZE[1])
    side = max(side, 8)
    board = []
    for k in range(top_k):
        r, c = divmod(k, cols)
        cx = x0 + (c + 0.5) * cell_w
        cy = top - (r + 0.5) * cell_h
        bw, bh = 0.8 * side / w, 0.8 * side / h
        board.append((cx - bw / 2, cy - bh / 2, bw, bh))
    return _Layout(
        scatter=(0.035, 0.17, 0.50, 0.70),
        board=board,
        loss=(0.64, 0.09, 0.335, 0.26),
        thumb_px=max(8, int(0.8 * side)),
    )


def _class_colors(n_classes: int) -> np.ndarray:
    """(n_classes, 4) float RGBA, qualitative where the palettes allow."""
    from matplotlib import colormaps

    if n_classes <= 10:
        return colormaps["tab10"](np.arange(n_classes))
    if n_classes <= 20:
        return colormaps["tab20"](np.arange(n_classes))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))


def _limits(coords: np.ndarray, box_px: tuple[float, float]) -> tuple[float, float, float, float]:
    """Axis limits covering every snapshot (5 % margin) with equal scale on both axes.

    ``coords`` (S, n, 2); ``box_px`` the axes size in pixels. One data unit gets the same
    number of pixels horizontally and vertically, so distances in the picture are faithful.
    """
    finite = coords[np.isfinite(coords).all(-1)]
    if finite.size == 0:
        return -1.0, 1.0, -1.0, 1.0
    lo, hi = finite.min(0).astype(float), finite.max(0).astype(float)
    span = np.maximum(hi - lo, 1e-9) * 1.1
    center = (lo + hi) / 2
    aspect = box_px[0] / box_px[1]
    if span[0] / span[1] < aspect:
        span[0] = span[1] * aspect
    else:
        span[1] = span[0] / aspect
    return (center[0] - span[0] / 2, center[0] + span[0] / 2,
            center[1] - span[1] / 2, center[1] + span[1] / 2)


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

class Renderer:
    """One Agg figure per process; ``render(frame)`` returns (H, W, 3) uint8 RGB.

    The returned array is a view of the canvas buffer, valid until the next ``render``.
    """

    def __init__(self, scene):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.scene = s = scene
        w, h = s.size
        # +0.25 px: Agg truncates the figure size to whole pixels.
        self.fig = fig = Figure(figsize=((w + 0.25) / s.dpi, (h + 0.25) / s.dpi), dpi=s.dpi)
        self.canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        lay = frame_layout(s.size, s.top_k)

        self.title = fig.text(0.035, 0.955, "", fontsize=15, weight="bold", va="center")
        self.subtitle = fig.text(0.035, 0.915, "", fontsize=9.5, color="0.35", va="center")

        # Scatter: points in a shuffled order so no class is always drawn on top.
        ax = self.ax = fig.add_axes(lay.scatter)
        n = len(s.labels)
        colors = _class_colors(len(s.class_names))
        box = (lay.scatter[2] * w, lay.scatter[3] * h)
        x0, x1, y0, y1 = _limits(s.coords, box)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.75")
        ax.set_xlabel("aligned PCA 1", fontsize=8.5, color="0.4", labelpad=2)
        ax.set_ylabel("aligned PCA 2", fontsize=8.5, color="0.4", labelpad=2)
        point_size = float(np.clip(4000.0 / max(n, 1), 2.0, 36.0))  # marker area, pt^2
        # One marker line per (class, quarter of the class): Agg stamps a marker drawn once
        # (draw_markers), ~10x faster than a scatter with a colour per point; drawing the
        # quarters in a shuffled order keeps any one class from always sitting on top.
        groups = [
            (c, part)
            for c in range(len(s.class_names))
            for part in np.array_split(s.order[s.labels[s.order] == c], 4)
            if len(part)
        ]
        groups = [groups[g] for g in np.random.default_rng(1).permutation(len(groups))]
        self.groups = [
            (ax.plot([], [], ls="", marker="o", ms=math.sqrt(point_size), mew=0, color=colors[c],
                     alpha=0.8 if n > 2000 else 0.9, zorder=2)[0], rows)
            for c, rows in groups
        ]
        self.rings = ax.scatter(
            np.zeros(s.top_k), np.zeros(s.top_k), s=max(point_size * 4, 60), facecolors="none",
            edgecolors="black", linewidths=1.2, zorder=3,
        )
        self.ranks = [
            ax.annotate(
                str(k + 1), (0, 0), xytext=(5, 4), textcoords="offset points", fontsize=8,
                weight="bold", zorder=4, annotation_clip=True,
            )
            for k in range(s.top_k)
        ]
        handles = [
            Line2D([], [], ls="", marker="o", ms=7, color=colors[c], label=name)
            for c, name in enumerate(s.class_names)
        ]
        # Below the axes, never over the points.
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.055),
            ncol=min(len(handles), 6 if len(handles) > 10 else 5), frameon=False,
            fontsize=9 if len(handles) <= 12 else 7.5, handletextpad=0.2, columnspacing=1.2,
        )

        # Leaderboard.
        fig.text(
            lay.board[0][0] - 0.012, 0.905, f"Top {s.top_k} outliers of this snapshot",
            fontsize=11.5, weight="bold", va="center",
        )
        fig.text(
            lay.board[0][0] - 0.012, 0.875, "lowest cleanlab OOD score first; reviewer exclusions skipped",
            fontsize=8, color="0.35", va="center",
        )
        self.tiles, self.heads, self.feet = [], [], []
        blank = placeholder_tile(lay.thumb_px)
        for rect in lay.board:
            # No axes decoration: the thumbnails carry their own frame, so an unused slot
            # (fewer rows than k after exclusions) is simply not drawn.
            tax = fig.add_axes(rect)
            tax.set_axis_off()
            self.tiles.append(tax.imshow(blank, interpolation="nearest"))
            self.heads.append(tax.text(0.5, 1.04, "", transform=tax.transAxes, ha="center",
                                       va="bottom", fontsize=8.5, weight="bold"))
            self.feet.append(tax.text(0.5, -0.04, "", transform=tax.transAxes, ha="center",
                                      va="top", fontsize=7.5, color="0.25"))

        # Loss curve on the real step axis.
        lax = self.lax = fig.add_axes(lay.loss)
        lax.set_title("training loss", fontsize=10, loc="left", weight="bold")
        lax.set_xlabel("step", fontsize=8.5, labelpad=1)
        lax.tick_params(labelsize=7.5)
        for side in ("top", "right"):
            lax.spines[side].set_visible(False)
        last_step = int(s.steps[-1])
        if s.loss is not None:
            ls, lv = s.loss
            last_step = max(last_step, int(ls[-1]))
            lax.set_ylim(0 if lv.min() >= 0 else lv.min() * 1.1, lv.max() * 1.08)
            self.loss_line, = lax.plot([], [], color="tab:blue", lw=1.4)
            self.loss_dot, = lax.plot([], [], "o", color="tab:red", ms=5, zorder=3)
        else:
            lax.set_yticks([])
            lax.text(0.5, 0.6, s.loss_note, transform=lax.transAxes, ha="center", va="center",
                     fontsize=8.5, color="0.4")
            self.loss_line = self.loss_dot = None
        lax.set_xlim(0, max(last_step, 1) * 1.02)
        # Ticks at every snapshot, so the reader sees where the frames come from.
        lax.plot(s.steps, np.zeros(len(s.steps)), "|", color="0.55", ms=6,
                 transform=lax.get_xaxis_transform(), clip_on=False)
        self.now = lax.axvline(0, color="tab:red", lw=0.9, alpha=0.6)

        # Blitting: what never changes (axes, ticks, legend, headings) is drawn once and
        # restored per frame; only the artists that change are drawn again.
        self.dynamic = [*(line for line, _ in self.groups), self.rings, *self.ranks,
                        self.title, self.subtitle, *self.tiles, *self.heads, *self.feet, self.now]
        if self.loss_line is not None:
            self.dynamic += [self.loss_line, self.loss_dot]
        for artist in self.dynamic:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def render(self, frame: int) -> np.ndarray:
        s = self.scene
        _, _, near = s.source(frame)
        xy = s.coords_at(frame)
        for line, rows in self.groups:
            line.set_data(xy[rows, 0], xy[rows, 1])
        self.title.set_text(s.titles[near])
        self.subtitle.set_text(s.subtitles[near])

        rows, scores = s.board[near], s.board_scores[near]
        self.rings.set_offsets(xy[rows] if len(rows) else np.zeros((0, 2)))
        for k in range(s.top_k):
            shown = k < len(rows)
            for artist in (self.ranks[k], self.tiles[k], self.heads[k], self.feet[k]):
                artist.set_visible(shown)
            if not shown:
                continue
            row = int(rows[k])
            self.ranks[k].xy = tuple(xy[row])
            self.tiles[k].set_data(s.thumbs[row])
            name = s.class_names[s.labels[row]]
            name = f"label {name}" if name.isdigit() else name  # "#1 7" would read as a number
            self.heads[k].set_text(f"#{k + 1} {_short(name, 14)}")
            self.feet[k].set_text(f"{scores[k]:.3g} · {_short(s.ids[row], 12)}")

        step = int(s.steps[near])
        self.now.set_xdata([step, step])
        if self.loss_line is not None:
            ls, lv = s.loss
            seen = ls <= step
            self.loss_line.set_data(ls[seen], lv[seen])
            if ls[0] <= step <= ls[-1]:
                self.loss_dot.set_data([step], [np.interp(step, ls, lv)])
            else:
                self.loss_dot.set_data([], [])

        self.canvas.restore_region(self.background)
        for artist in self.dynamic:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3]


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"

