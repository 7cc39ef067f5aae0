"""The animation's figure: its layout and the :class:`Renderer` that draws a frame of a
:class:`spotreview.rendering.scene.Scene` by updating one figure's artists (colours, axis
limits, marker sizes and drawing order come from :mod:`spotreview.rendering.style`).

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

import numpy as np

from spotreview.rendering import rings, style
from spotreview.rendering.placement import leader, place_labels
from spotreview.rendering.thumbnails import placeholder_tile
from spotreview.util.text import end_ellipsis, middle_ellipsis, plural, sig

DEFAULT_SIZE = (1280, 720)
# The layout is designed at this size and dpi; other sizes scale the dpi so the frame
# looks the same, only sharper or smaller.
DESIGN_DPI = 100.0
_SCATTER = (0.035, 0.17, 0.50, 0.70)  # the scatter axes in figure fractions (left, bottom, width, height)


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
        scatter=_SCATTER,
        board=board,
        loss=(0.64, 0.09, 0.335, 0.26),
        thumb_px=max(8, int(0.8 * side)),
    )


def scatter_box_px(size: tuple[int, int] = DEFAULT_SIZE) -> tuple[float, float]:
    """(width, height) in pixels of the scatter axes in a frame of ``size`` (W, H) pixels."""
    return (_SCATTER[2] * size[0], _SCATTER[3] * size[1])


class Renderer:
    """One Agg figure per process; ``render(frame)`` returns (H, W, 3) uint8 RGB.

    The returned array is a view of the canvas buffer, valid until the next ``render``.
    """

    def __init__(self, scene):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.text import Text

        self.scene = s = scene
        w, h = s.size
        # +0.25 px: Agg truncates the figure size to whole pixels.
        self.fig = fig = Figure(figsize=((w + 0.25) / s.dpi, (h + 0.25) / s.dpi), dpi=s.dpi)
        self.canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        lay = frame_layout(s.size, s.top_k)

        self.title = fig.text(0.035, 0.955, "", fontsize=15, weight="bold", va="center")
        self.subtitle = fig.text(0.035, 0.915, "", fontsize=9.5, color="0.35", va="center")
        colors = style.class_colors(len(s.class_names))
        self._build_scatter(lay, colors)
        self._build_marks()
        self._build_legend(colors)
        self._build_board(lay)
        self._build_loss(lay)

        # Blitting: what never changes (axes, ticks, legend, headings) is drawn once and
        # restored per frame; only the artists that change are drawn again.
        self.dynamic = [
            *(line for line, _ in self.groups),
            self.issue_rings,
            self.rings,
            self.marks,
            self.leaders,
            *self.ranks,
            *self.names,
            self.title,
            self.subtitle,
            *self.tiles,
            *self.heads,
            *self.feet,
            self.now,
        ]
        if self.loss_line is not None:
            self.dynamic += [self.loss_line, self.loss_dot]
        for artist in self.dynamic:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        # Label sizes in pixels (with room for the halo or box), measured once.
        renderer = self.canvas.get_renderer()
        px = s.dpi / 72  # pixels per point
        self.label_sizes = np.array(
            [_extent(t, renderer, pad=2) for t in self.ranks]
            + [_extent(t, renderer, pad=2 + 2 * 0.25 * t.get_fontsize() * px) for t in self.names]
        ).reshape(-1, 2)
        # Caption width: one leaderboard cell, less a small margin.
        self.caption_px = (lay.board[1][0] - lay.board[0][0]) * w - 6 if s.top_k > 1 else 0.2 * w
        self.captions: dict[tuple[int, str], str] = {}
        self.offsets: dict[int, np.ndarray] = {}  # snapshot -> (m, 2) label offsets in pixels
        self.measure = Text(0, 0, "", fontsize=self.feet[0].get_fontsize())  # never drawn
        self.measure.set_figure(fig)

    def _build_scatter(self, lay: _Layout, colors: np.ndarray) -> None:
        """The scatter axes at the fixed limits, and one empty marker line per draw group."""
        s = self.scene
        w, h = s.size
        ax = self.ax = self.fig.add_axes(lay.scatter)
        n = len(s.labels)
        x0, x1, y0, y1 = style.axis_limits(s.coords, (lay.scatter[2] * w, lay.scatter[3] * h))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.75")
        ax.set_xlabel("aligned PCA 1", fontsize=8.5, color="0.4", labelpad=2)
        ax.set_ylabel("aligned PCA 2", fontsize=8.5, color="0.4", labelpad=2)
        # One marker line per draw group: Agg stamps a marker drawn once (draw_markers)
        # instead of a path per point, as a scatter with a colour per point would.
        ms = math.sqrt(style.marker_area(n))
        alpha = style.marker_alpha(n)
        self.groups = [
            (ax.plot([], [], ls="", marker="o", ms=ms, mew=0, color=colors[c], alpha=alpha, zorder=2)[0], rows)
            for c, rows in style.draw_groups(s.labels, len(s.class_names), s.order)
        ]

    def _build_marks(self) -> None:
        """Rings of the outliers, squares of the reader's picks, their labels and leader lines."""
        from matplotlib import patheffects
        from matplotlib.collections import LineCollection
        from matplotlib.transforms import IdentityTransform

        s, ax = self.scene, self.ax
        ring_area = style.ring_area(len(s.labels))
        self.rings = ax.scatter(
            np.zeros(s.top_k),
            np.zeros(s.top_k),
            s=ring_area,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            zorder=3,
        )
        self.issue_rows, self.issue_rings = rings.ring_artist(ax, s.issue, ring_area)  # --highlight-issue
        # The reader's picks (--highlight): a heavier square, labelled with the id in a box.
        self.chosen = np.asarray(s.highlight if s.highlight is not None else [], dtype=np.int64)
        self.marks = ax.scatter(
            np.zeros(len(self.chosen)),
            np.zeros(len(self.chosen)),
            s=ring_area * 1.3,
            marker="s",
            facecolors="none",
            edgecolors="black",
            linewidths=1.8,
            zorder=3,
        )
        # Labels: rank numbers of the outliers, then the ids of the picks, placed per frame
        # around their points (spotreview.rendering.placement) with leader lines where pushed away.
        halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
        label = dict(textcoords="offset pixels", ha="center", va="center", zorder=5, annotation_clip=False)
        self.ranks = [
            ax.annotate(str(k + 1), (0, 0), xytext=(0, 0), fontsize=8, weight="bold", path_effects=halo, **label)
            for k in range(s.top_k)
        ]
        self.names = [
            ax.annotate(
                middle_ellipsis(s.ids[row], 24),
                (0, 0),
                xytext=(0, 0),
                fontsize=7.5,
                bbox=dict(boxstyle="square,pad=0.25", fc="white", ec="black", lw=0.6),
                **label,
            )
            for row in self.chosen
        ]
        self.leaders = LineCollection([], transform=IdentityTransform(), colors="0.25", linewidths=0.7, zorder=4)
        ax.add_collection(self.leaders, autolim=False)
        self.gap = math.sqrt(ring_area * 1.3) / 2 * (s.dpi / 72) + 2  # free radius around a marked point, px

    def _build_legend(self, colors: np.ndarray) -> None:
        """The class legend, below the scatter axes so it never covers the points."""
        from matplotlib.lines import Line2D

        names = self.scene.class_names
        handles = [Line2D([], [], ls="", marker="o", ms=7, color=colors[c], label=name) for c, name in enumerate(names)]
        handles += rings.legend_handles(self.scene.issue)
        self.ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.055),
            ncol=min(len(handles), 6 if len(handles) > 10 else 5),
            frameon=False,
            fontsize=9 if len(handles) <= 12 else 7.5,
            handletextpad=0.2,
            columnspacing=1.2,
        )

    def _build_board(self, lay: _Layout) -> None:
        """The leaderboard's headings and one thumbnail slot (tile, head, foot) per rank."""
        fig, top_k = self.fig, self.scene.top_k
        left = lay.board[0][0] - 0.012
        fig.text(
            left, 0.905, f"Top {plural(top_k, 'outlier')} of this snapshot", fontsize=11.5, weight="bold", va="center"
        )
        fig.text(
            left,
            0.875,
            "lowest cleanlab OOD score first; reviewer exclusions skipped",
            fontsize=8,
            color="0.35",
            va="center",
        )
        self.tiles, self.heads, self.feet = [], [], []
        blank = placeholder_tile(lay.thumb_px)
        for rect in lay.board:
            # No axes decoration: the thumbnails carry their own frame, so an unused slot
            # (fewer rows than k after exclusions) is simply not drawn.
            tax = fig.add_axes(rect)
            tax.set_axis_off()
            self.tiles.append(tax.imshow(blank, interpolation="nearest"))
            self.heads.append(
                tax.text(0.5, 1.04, "", transform=tax.transAxes, ha="center", va="bottom", fontsize=8.5, weight="bold")
            )
            self.feet.append(
                tax.text(0.5, -0.04, "", transform=tax.transAxes, ha="center", va="top", fontsize=7.5, color="0.25")
            )

    def _build_loss(self, lay: _Layout) -> None:
        """The loss panel on the real step axis: the curve (or why there is none), a tick at
        every snapshot and the current-step line."""
        s = self.scene
        lax = self.lax = self.fig.add_axes(lay.loss)
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
            (self.loss_line,) = lax.plot([], [], color="tab:blue", lw=1.4)
            (self.loss_dot,) = lax.plot([], [], "o", color="tab:red", ms=5, zorder=3)
        else:
            lax.set_yticks([])
            lax.text(
                0.5, 0.6, s.loss_note, transform=lax.transAxes, ha="center", va="center", fontsize=8.5, color="0.4"
            )
            self.loss_line = self.loss_dot = None
        # A margin left of step 0, so the current-step marker is clear of the y axis.
        lax.set_xlim(-max(last_step, 1) * 0.03, max(last_step, 1) * 1.02)
        # Ticks at every snapshot, so the reader sees where the frames come from.
        lax.plot(
            s.steps, np.zeros(len(s.steps)), "|", color="0.55", ms=6, transform=lax.get_xaxis_transform(), clip_on=False
        )
        self.now = lax.axvline(0, color="tab:red", lw=0.9, alpha=0.6)

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
        self.issue_rings.set_offsets(xy[self.issue_rows] if len(self.issue_rows) else np.zeros((0, 2)))
        self.marks.set_offsets(xy[self.chosen] if len(self.chosen) else np.zeros((0, 2)))
        for k in range(s.top_k):
            shown = k < len(rows)
            for artist in (self.ranks[k], self.tiles[k], self.heads[k], self.feet[k]):
                artist.set_visible(shown)
            if not shown:
                continue
            row = int(rows[k])
            self.tiles[k].set_data(s.thumbs[row])
            name = s.class_names[s.labels[row]]
            name = f"label {name}" if name.isdigit() else name  # "#1 7" would read as a number
            self.heads[k].set_text(f"#{k + 1} {end_ellipsis(name, 14)}")
            self.feet[k].set_text(self._caption(row, scores[k]))
        self._place_labels(xy, rows, near)

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

    def _caption(self, row: int, score: float) -> str:
        """``score · id``, the id cut in the middle (keeping its end) only if the whole
        caption does not fit under its thumbnail."""
        key = (row, sig(score))
        if key not in self.captions:
            foot, renderer = self.measure, self.canvas.get_renderer()
            full = str(self.scene.ids[row])
            for n in range(len(full), 2, -1):
                foot.set_text(f"{key[1]} · {middle_ellipsis(full, n)}")
                if foot.get_window_extent(renderer).width <= self.caption_px:
                    break
            self.captions[key] = foot.get_text()
        return self.captions[key]

    def _place_labels(self, xy: np.ndarray, rows: np.ndarray, near: int) -> None:
        """Put the rank and id labels around their points: no overlaps, inside the axes.

        Between snapshots a label keeps the offset it has at snapshot ``near`` while that
        place stays free, so labels glide with their points instead of hopping; the offsets
        depend only on the frame, so any worker draws a frame the same.
        """
        labels = self.ranks[: len(rows)] + self.names
        points = np.concatenate([np.asarray(rows, np.int64), self.chosen])
        if not len(points):
            self.leaders.set_segments([])
            return
        if near not in self.offsets:
            anchors, centres, _ = self._layout(self.scene.coords[near][points], len(rows), None)
            self.offsets[near] = centres - anchors
        anchors, centres, sizes = self._layout(xy[points], len(rows), self.offsets[near])
        segments = []
        for text, point, anchor, centre, size in zip(labels, points, anchors, centres, sizes):
            text.xy = tuple(xy[point])
            text.xyann = tuple(centre - anchor)
            line = leader(anchor, centre, size, self.gap)
            if line is not None:
                segments.append(line)
        self.leaders.set_segments(segments)

    def _layout(self, xy: np.ndarray, n_ranks: int, prefer) -> tuple[np.ndarray, ...]:
        """(anchors, label centres, label sizes) in pixels of the labelled points at data
        coordinates ``xy``: the first ``n_ranks`` rank labels, then every id label."""
        anchors = self.ax.transData.transform(xy)
        sizes = np.concatenate([self.label_sizes[:n_ranks], self.label_sizes[self.scene.top_k :]])
        box = self.ax.bbox
        centres = place_labels(
            anchors, sizes, (box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1), gap=self.gap, prefer=prefer
        )
        return anchors, centres, sizes


def _extent(text, renderer, pad: float) -> tuple[float, float]:
    """(width, height) in pixels of a text artist, plus ``pad`` on each side."""
    from matplotlib.text import Text

    bbox = Text.get_window_extent(text, renderer)  # the text alone, wherever it points
    return bbox.width + 2 * pad, bbox.height + 2 * pad
