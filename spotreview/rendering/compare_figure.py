"""The comparison's figure: :class:`ComparisonRenderer` draws a frame of a
:class:`~spotreview.rendering.compare_scene.ComparisonScene`.

* two panels side by side, run A left and run B right: each the run's aligned 2-D cloud at
  its own fixed axes, coloured by class with the same colours (:mod:`spotreview.rendering.style`),
  a heading with the run's step, epoch and accuracy, and below it the run's training loss
  revealed up to that step with its accuracy at every snapshot reached;
* right, the leaderboard of the images whose outcome differs most between the runs, each
  ringed in the outcome's colour and numbered in both panels.

As in :mod:`spotreview.rendering.figure`, the figure is built once per process, what never
changes is drawn once (blitting), and the frame is read from the Agg canvas buffer.
"""

from __future__ import annotations

import math

import numpy as np

from spotreview.rendering import style
from spotreview.rendering.placement import leader, place_labels
from spotreview.rendering.style import CHANGE_COLORS
from spotreview.util.text import middle_ellipsis, plural

_PANELS = ((0.02, 0.365), (0.405, 0.365))  # (left, width) of each panel, in figure fractions
_SCATTER_Y = (0.36, 0.465)  # (bottom, height) of the scatters
_LOSS_Y = (0.075, 0.165)
_BOARD = (0.795, 0.99, 0.815, 0.03)  # left, right, top, bottom of the leaderboard's cells
_BOARD_COLS = 2
_RING = "#000000"  # rings without predictions (no outcome colour)
#: How a sync mode reads in the subtitle: what lines the two runs up.
SYNC_WORDS = {
    "progress": "training progress (a step as a share of its run's last)",
    "step": "training step",
    "epoch": "epoch",
}


def _board_rows(top_k: int) -> int:
    return max(1, math.ceil(top_k / _BOARD_COLS))


def board_thumb_px(size: tuple[int, int], top_k: int) -> int:
    """The side in pixels of a leaderboard thumbnail in a frame of ``size`` (W, H)."""
    w, h = size
    x0, x1, top, bottom = _BOARD
    cell_w = (x1 - x0) / _BOARD_COLS * w
    cell_h = (top - bottom) / _board_rows(top_k) * h
    return max(8, int(min(0.78 * cell_w, cell_h - 54 * h / 720)))


def _fmt_value(sync: str, value: float) -> str:
    if sync == "progress":
        return f"training progress {value:.0%}"
    if sync == "step":
        return f"step {value:,.0f}"
    return f"epoch {value:.2f}"


class ComparisonRenderer:
    """One Agg figure per process; ``render(frame)`` returns (H, W, 3) uint8 RGB (a view of
    the canvas buffer, valid until the next ``render``)."""

    def __init__(self, scene):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.scene = s = scene
        w, h = s.size
        self.fig = fig = Figure(figsize=((w + 0.25) / s.dpi, (h + 0.25) / s.dpi), dpi=s.dpi)
        self.canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        self.title = fig.text(0.02, 0.955, "", fontsize=15, weight="bold", va="center")
        n = len(s.ids)
        fig.text(
            0.02,
            0.918,
            f"{middle_ellipsis(s.names[0], 24)} (A) vs {middle_ellipsis(s.names[1], 24)} (B), {plural(n, 'image')}; "
            f"synchronised by "
            f"{SYNC_WORDS[s.sync]}; each run at its own axes",
            fontsize=9,
            color="0.35",
            va="center",
        )
        self.colors = style.class_colors(len(s.panels[0].class_names))
        self.ring_colors = [CHANGE_COLORS.get(kind, _RING) for kind in s.kinds]
        self.panels = [self._build_panel(k) for k in range(2)]
        self._build_legend()
        self._build_board()
        self.dynamic = [self.title] + [a for p in self.panels for a in p["dynamic"]]
        for artist in self.dynamic:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        renderer = self.canvas.get_renderer()
        self.label_sizes = np.array([_extent(t, renderer) for t in self.panels[0]["numbers"]]).reshape(-1, 2)
        self.offsets: dict[tuple[int, int], np.ndarray] = {}

    # --- building ----------------------------------------------------------------------------

    def _build_panel(self, k: int) -> dict:
        """Panel ``k``: heading, scatter at its run's fixed axes, rings and numbers, loss panel."""
        from matplotlib import patheffects

        s, scene = self.scene, self.scene.panels[k]
        w, h = s.size
        left, width = _PANELS[k]
        fig = self.fig
        fig.text(
            left, 0.872, f"{'AB'[k]}: {middle_ellipsis(s.names[k], 48)}", fontsize=11.5, weight="bold", va="center"
        )
        head = fig.text(left, 0.842, "", fontsize=9, color="0.25", va="center")
        rect = (left, _SCATTER_Y[0], width, _SCATTER_Y[1])
        ax = fig.add_axes(rect)
        x0, x1, y0, y1 = style.axis_limits(scene.coords, (width * w, _SCATTER_Y[1] * h))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.75")
        ax.set_xlabel("aligned PCA 1", fontsize=8, color="0.4", labelpad=2)
        ax.set_ylabel("aligned PCA 2", fontsize=8, color="0.4", labelpad=2)
        n = len(scene.labels)
        ms, alpha = math.sqrt(style.marker_area(n)), style.marker_alpha(n)
        groups = [
            (ax.plot([], [], ls="", marker="o", ms=ms, mew=0, color=self.colors[c], alpha=alpha, zorder=2)[0], rows)
            for c, rows in style.draw_groups(scene.labels, len(scene.class_names), scene.order)
        ]
        ring_area = style.ring_area(n)
        board = s.board
        rings = ax.scatter(
            np.zeros(len(board)),
            np.zeros(len(board)),
            s=ring_area,
            facecolors="none",
            edgecolors=self.ring_colors or "black",
            linewidths=1.6,
            zorder=3,
        )
        halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
        numbers = [
            ax.annotate(
                str(slot + 1),
                (0, 0),
                xytext=(0, 0),
                textcoords="offset pixels",
                ha="center",
                va="center",
                fontsize=8,
                weight="bold",
                path_effects=halo,
                zorder=5,
                annotation_clip=False,
            )
            for slot in range(len(board))
        ]
        from matplotlib.collections import LineCollection
        from matplotlib.transforms import IdentityTransform

        leaders = LineCollection([], transform=IdentityTransform(), colors="0.25", linewidths=0.7, zorder=4)
        ax.add_collection(leaders, autolim=False)
        loss = self._build_loss(k, left)
        dynamic = [*(line for line, _ in groups), rings, leaders, *numbers, head, *loss.pop("changing")]
        return {
            "ax": ax,
            "head": head,
            "groups": groups,
            "rings": rings,
            "numbers": numbers,
            "leaders": leaders,
            "gap": math.sqrt(ring_area) / 2 * (s.dpi / 72) + 2,
            "dynamic": dynamic,
            **loss,
        }

    def _build_loss(self, k: int, left: float) -> dict:
        """The run's loss on its own step axis (or why there is none), its accuracy at every
        snapshot on a 0-100 % axis at the right, a tick per snapshot and the current step."""
        scene = self.scene.panels[k]
        lax = self.fig.add_axes((left + 0.04, _LOSS_Y[0], _PANELS[k][1] - 0.08, _LOSS_Y[1]))
        lax.set_title("training loss", fontsize=9, loc="left", weight="bold", color="tab:blue")
        lax.set_xlabel("step", fontsize=8, labelpad=1)
        lax.tick_params(labelsize=7)
        lax.spines["top"].set_visible(False)
        last_step = int(scene.steps[-1])
        line = dot = None
        if scene.loss is not None:
            ls, lv = scene.loss
            last_step = max(last_step, int(ls[-1]))
            lax.set_ylim(0 if lv.min() >= 0 else lv.min() * 1.1, lv.max() * 1.08)
            (line,) = lax.plot([], [], color="tab:blue", lw=1.3)
            (dot,) = lax.plot([], [], "o", color="tab:red", ms=4, zorder=3)
        else:
            lax.set_yticks([])
            lax.text(0.5, 0.6, scene.loss_note, transform=lax.transAxes, ha="center", fontsize=7.5, color="0.4")
        lax.set_xlim(-max(last_step, 1) * 0.03, max(last_step, 1) * 1.02)
        lax.plot(
            scene.steps,
            np.zeros(len(scene.steps)),
            "|",
            color="0.55",
            ms=5,
            transform=lax.get_xaxis_transform(),
            clip_on=False,
        )
        acc_ax = lax.twinx()
        acc_ax.set_ylim(0, 1.05)
        acc_ax.set_yticks([0, 0.5, 1])
        acc_ax.set_yticklabels(["0%", "50%", "100%"])
        acc_ax.tick_params(labelsize=7, colors="tab:orange")
        acc_ax.spines["top"].set_visible(False)
        (acc,) = acc_ax.plot([], [], "s-", color="tab:orange", ms=3, lw=0.9, alpha=0.9)
        acc_ax.text(1.0, 1.08, "eval accuracy", transform=lax.transAxes, ha="right", fontsize=8, color="tab:orange")
        now = lax.axvline(0, color="tab:red", lw=0.9, alpha=0.6)
        changing = [a for a in (line, dot, acc, now) if a is not None]
        return {"loss_line": line, "loss_dot": dot, "acc": acc, "now": now, "changing": changing}

    def _build_legend(self) -> None:
        """Class colours (shared by both panels), and what the numbered rings mean."""
        from matplotlib.lines import Line2D

        names = self.scene.panels[0].class_names
        handles = [Line2D([], [], ls="", marker="o", ms=6, color=self.colors[c], label=n) for c, n in enumerate(names)]
        for kind in ("fixed", "broken"):
            if kind in self.scene.kinds:
                handles.append(
                    Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec=CHANGE_COLORS[kind], mew=1.6, label=kind)
                )
        self.fig.legend(
            handles=handles,
            loc="center",
            bbox_to_anchor=(0.395, 0.305),
            ncol=min(len(handles), 12),
            frameon=False,
            fontsize=8.5 if len(handles) <= 12 else 7,
            handletextpad=0.15,
            columnspacing=0.9,
        )

    def _build_board(self) -> None:
        """The leaderboard: heading, then a thumbnail with captions per image (never changes)."""
        s, fig = self.scene, self.fig
        w, h = s.size
        x0, x1, top, bottom = _BOARD
        fig.text(x0 - 0.005, 0.905, "Outcome differs most", fontsize=11.5, weight="bold", va="center")
        what = "fixed or broken by B first" if s.counts else "largest change of outlier rank first"
        fig.text(x0 - 0.005, 0.875, f"at the last snapshots; {what}", fontsize=7.5, color="0.35", va="center")
        if s.counts:
            counts = " · ".join(f"{k.replace('_', ' ')} {v}" for k, v in s.counts.items())
            fig.text(x0 - 0.005, 0.848, counts, fontsize=7.5, color="0.2", va="center")
        rows = _board_rows(s.top_k)
        cell_w, cell_h = (x1 - x0) / _BOARD_COLS, (top - bottom) / rows
        side = board_thumb_px(s.size, s.top_k)
        for slot, row in enumerate(s.board.tolist()):
            r, c = divmod(slot, _BOARD_COLS)
            cx, cy = x0 + (c + 0.5) * cell_w, top - (r + 0.45) * cell_h
            bw, bh = side / w, side / h
            tax = fig.add_axes((cx - bw / 2, cy - bh / 2 + 0.01, bw, bh))
            tax.set_axis_off()
            tax.imshow(s.thumbs[row], interpolation="nearest")
            colour = CHANGE_COLORS.get(s.kinds[slot], "black")
            tax.text(0.5, 1.04, s.heads[slot], transform=tax.transAxes, ha="center", va="bottom", fontsize=8.5,
                     weight="bold", color=colour)  # fmt: skip
            tax.text(0.5, -0.04, s.feet[slot], transform=tax.transAxes, ha="center", va="top", fontsize=7,
                     color="0.2", linespacing=1.15)  # fmt: skip

    # --- drawing a frame ----------------------------------------------------------------------

    def render(self, frame: int) -> np.ndarray:
        s = self.scene
        self.title.set_text(_fmt_value(s.sync, s.value_at(frame)).capitalize())
        for k, panel in enumerate(self.panels):
            self._draw_panel(k, panel, s.position(k, frame))
        self.canvas.restore_region(self.background)
        for artist in self.dynamic:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3]

    def _draw_panel(self, k: int, panel: dict, position: float) -> None:
        s, scene = self.scene, self.scene.panels[k]
        i = min(int(math.floor(position)), len(scene.steps) - 1)
        t = position - i
        xy = scene.coords[i] if t == 0 else (1 - t) * scene.coords[i] + t * scene.coords[i + 1]
        near = min(int(round(position)), len(scene.steps) - 1)
        for line, rows in panel["groups"]:
            line.set_data(xy[rows, 0], xy[rows, 1])
        step = float(np.interp(position, np.arange(len(scene.steps)), scene.steps))
        parts = [f"step {step:,.0f}"]
        epochs = scene.epochs
        if epochs is not None and np.isfinite(epochs).all() and len(epochs) > 1:
            parts.append(f"epoch {np.interp(position, np.arange(len(epochs)), epochs):.2f}")
        elif epochs is not None and np.isfinite(epochs[near]):
            parts.append(f"epoch {epochs[near]:.2f}")
        acc = s.accuracy[k]
        if np.isfinite(acc[near]):
            parts.append(f"eval accuracy {acc[near]:.0%} (snapshot {near + 1} of {len(scene.steps)})")
        else:
            parts.append(f"snapshot {near + 1} of {len(scene.steps)}")
        panel["head"].set_text("   ·   ".join(parts))
        board = s.board
        panel["rings"].set_offsets(xy[board] if len(board) else np.zeros((0, 2)))
        self._place_numbers(k, panel, xy, near)
        panel["now"].set_xdata([step, step])
        if panel["loss_line"] is not None:
            ls, lv = scene.loss
            seen = ls <= step
            panel["loss_line"].set_data(ls[seen], lv[seen])
            inside = ls[0] <= step <= ls[-1]
            panel["loss_dot"].set_data(([step], [np.interp(step, ls, lv)]) if inside else ([], []))
        reached = (scene.steps <= step + 1e-9) & np.isfinite(acc)
        panel["acc"].set_data(scene.steps[reached], acc[reached])

    def _place_numbers(self, k: int, panel: dict, xy: np.ndarray, near: int) -> None:
        """The leaderboard numbers around their rings: no overlaps, inside the axes; between
        snapshots a number keeps the offset it has at snapshot ``near`` while that stays free."""
        board = self.scene.board
        if not len(board):
            panel["leaders"].set_segments([])
            return
        ax = panel["ax"]
        box = ax.bbox
        bounds = (box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1)
        if (k, near) not in self.offsets:
            anchors = ax.transData.transform(self.scene.panels[k].coords[near][board])
            centres = place_labels(anchors, self.label_sizes, bounds, gap=panel["gap"])
            self.offsets[(k, near)] = centres - anchors
        anchors = ax.transData.transform(xy[board])
        centres = place_labels(anchors, self.label_sizes, bounds, gap=panel["gap"], prefer=self.offsets[(k, near)])
        segments = []
        for text, point, anchor, centre, size in zip(panel["numbers"], board, anchors, centres, self.label_sizes):
            text.xy = tuple(xy[point])
            text.xyann = tuple(centre - anchor)
            line = leader(anchor, centre, size, panel["gap"])
            if line is not None:
                segments.append(line)
        panel["leaders"].set_segments(segments)


def _extent(text, renderer) -> tuple[float, float]:
    """(width, height) in pixels of a text artist, with 2 px around it."""
    from matplotlib.text import Text

    bbox = Text.get_window_extent(text, renderer)
    return bbox.width + 4, bbox.height + 4
