"""Render the approved story as an animation: GIF, MP4 or a self-contained HTML player.

One frame per snapshot (plus ``tween`` interpolated frames between consecutive snapshots):

* left, the aligned 2-D embedding cloud coloured by class (legend below it), axes fixed
  across all frames, the top-k outliers ringed and numbered;
* right, a leaderboard of the top-k outliers of that snapshot (lowest cleanlab score
  first, reviewer exclusions skipped) as thumbnails with label and score, and the training
  loss from ``log.csv`` revealed up to the snapshot's step.

Speed and memory: one figure per process is built once and only its artists are updated
per frame; frames go from the Agg canvas buffer straight to the encoder (no PNG round
trip); GIF and MP4 frames are streamed to the file as they are made, so memory does not
grow with the number of frames (the HTML player holds its PNG-compressed frames until
the file is written, since they all live in one file). Long exports are rendered by two
forked processes, each with its own copy of the figure, frames consumed in order (only
where forking is safe: a single-threaded process on Linux; elsewhere one process).
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import math
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import ExportError
from .rundir import Run, atomic_path, write_json

FORMATS = {".gif": "gif", ".mp4": "mp4", ".html": "html", ".htm": "html"}
DEFAULT_SIZE = (1280, 720)
# The layout is designed at this size and dpi; other sizes scale the dpi so the frame
# looks the same, only sharper or smaller.
_DESIGN_DPI = 100.0
# GIF delays are stored in 1/100 s and most viewers slow delays under 20 ms to 100 ms.
_GIF_MAX_FPS = 50
# Below this, starting a second process does not pay off.
_PARALLEL_MIN_FRAMES = 16
_CHUNK = 4


def _warn(message: str) -> None:
    """One line on stderr, without breaking a progress bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)


# --- what every frame shows (plain data) --------------------------------------------------


@dataclass
class Scene:
    """Everything the renderer needs, as plain arrays and strings (no Run or Analysis).

    ``S`` snapshots, ``n`` points, ``k`` leaderboard slots, ``T`` thumbnail size.
    """

    steps: np.ndarray  # (S,) int64 training step of each snapshot
    coords: np.ndarray  # (S, n, 2) float32 aligned 2-D coordinates
    labels: np.ndarray  # (n,) int64 class index
    class_names: list[str]
    titles: list[str]  # (S,) "step 100 · epoch 2.00 · ..."
    subtitles: list[str]  # (S,)
    board: list[np.ndarray]  # (S,) each (<=k,) int64 row indices, most atypical first
    board_scores: list[np.ndarray]  # (S,) each (<=k,) float64
    ids: list[str]  # (n,)
    thumbs: dict[int, np.ndarray]  # row -> (T, T, 3) uint8, for every row on any board
    loss: tuple[np.ndarray, np.ndarray] | None  # (m,) steps, (m,) loss; None: no curve
    loss_note: str  # shown in the loss panel when ``loss`` is None
    top_k: int
    tween: int
    size: tuple[int, int]  # (W, H) pixels
    dpi: float
    order: np.ndarray  # (n,) int64 a fixed shuffle of the rows, for a fair drawing order

    @property
    def n_frames(self) -> int:
        return len(self.steps) + self.tween * (len(self.steps) - 1)

    def source(self, frame: int) -> tuple[int, float, int]:
        return _source(frame, self.tween)

    def coords_at(self, frame: int) -> np.ndarray:
        """(n, 2) float32 coordinates of a frame, linearly interpolated between snapshots."""
        i, t, _ = self.source(frame)
        if t == 0:
            return self.coords[i]
        return (1 - t) * self.coords[i] + t * self.coords[i + 1]


def _source(frame: int, tween: int) -> tuple[int, float, int]:
    """``(i, t, nearest)``: the frame lies ``t`` of the way from snapshot ``i`` to ``i + 1``;
    everything except the coordinates (title, leaderboard, loss) follows ``nearest``."""
    i, r = divmod(frame, tween + 1)
    t = r / (tween + 1)
    return i, t, i + 1 if t > 0.5 else i


def frame_sources(n_snapshots: int, tween: int) -> list[tuple[int, float, int]]:
    """``(i, t, nearest)`` of every frame: ``n_snapshots + tween * (n_snapshots - 1)`` frames."""
    return [_source(f, tween) for f in range(n_snapshots + tween * (n_snapshots - 1))]


def leaderboard(analysis, *, top_k: int = 8, exclude: Iterable[str] = ()) -> list[np.ndarray]:
    """Row indices shown on the leaderboard of every snapshot, most atypical first.

    Returns ``S`` int64 arrays of at most ``top_k`` rows; rows whose id is in ``exclude``
    (the reviewer's exclusions) never appear.
    """
    exclude = set(exclude)
    return [
        np.asarray(analysis.top(i, top_k, exclude=exclude), dtype=np.int64)
        for i in range(len(analysis.steps))
    ]


def _read_log(run: Run):
    """``(log DataFrame or None, reason)``; the reason says why there is no loss curve."""
    import pandas as pd

    if not run.log_csv.is_file():
        return None, f"{run.log_csv} is missing"
    try:
        log = pd.read_csv(run.log_csv)
    except (ValueError, pd.errors.ParserError) as e:
        return None, f"{run.log_csv} cannot be read ({str(e).splitlines()[0]})"
    if "step" not in log.columns:
        return None, f"{run.log_csv} has no step column"
    return log, ""


def _epochs(log, steps: np.ndarray) -> np.ndarray:
    """(S,) float64 epoch at each step, interpolated on step from log.csv; NaN if unknown."""
    out = np.full(len(steps), np.nan)
    if log is None or "epoch" not in log.columns:
        return out
    rows = log[["step", "epoch"]].dropna().sort_values("step")
    if rows.empty:
        return out
    xs = np.concatenate([[0.0], rows["step"].to_numpy(float)])  # step 0 is epoch 0
    ys = np.concatenate([[0.0], rows["epoch"].to_numpy(float)])
    known = steps <= xs[-1]
    out[known] = np.interp(steps[known], xs, ys)
    return out


def _loss_curve(log) -> tuple[np.ndarray, np.ndarray] | None:
    if log is None or "loss" not in log.columns:
        return None
    rows = log[["step", "loss"]].dropna().sort_values("step")
    rows = rows[np.isfinite(rows["loss"].to_numpy(float))]
    if rows.empty:
        return None
    return rows["step"].to_numpy(np.int64), rows["loss"].to_numpy(np.float64)


def _thumbnail(path: Path, size: int) -> np.ndarray | None:
    """(size, size, 3) uint8: the image letterboxed on white, or None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGBA")
    except (OSError, UnidentifiedImageError):
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


def _placeholder(size: int) -> np.ndarray:
    return _framed(np.full((size, size, 3), 235, np.uint8))


def _framed(tile: np.ndarray) -> np.ndarray:
    """(T, T, 3) uint8 with a 1-pixel grey border, so every tile reads as a card."""
    tile[[0, -1], :] = 150
    tile[:, [0, -1]] = 150
    return tile


def build_scene(
    analysis,
    *,
    exclude: Iterable[str] = (),
    top_k: int = 8,
    tween: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    dpi: float | None = None,
) -> Scene:
    """Collect what the frames show from an ``Analysis`` (and its run's log.csv and images).

    Prints one warning line when log.csv gives no loss curve and one when leaderboard
    images are missing (they become blank tiles).
    """
    run = Run(analysis.run)
    steps = np.asarray(analysis.steps, dtype=np.int64)
    coords = np.asarray(analysis.coords, dtype=np.float32)
    labels = np.asarray(analysis.labels, dtype=np.int64)
    scores = np.asarray(analysis.scores, dtype=np.float64)
    n_snap = len(steps)

    board = leaderboard(analysis, top_k=top_k, exclude=exclude)
    board_scores = [scores[i, rows] for i, rows in enumerate(board)]

    thumb_px = _layout(size, top_k).thumb_px
    thumbs, missing = {}, 0
    for row in sorted({int(r) for rows in board for r in rows}):
        tile = _thumbnail(run.image_path(analysis.ids[row]), thumb_px)
        if tile is None:
            missing += 1
            tile = _placeholder(thumb_px)
        thumbs[row] = tile
    if missing:
        _warn(
            f"{missing} leaderboard image(s) missing or unreadable under {run.images_dir}; "
            f"shown as blank tiles"
        )

    log, why = _read_log(run)
    loss = _loss_curve(log)
    if loss is None:
        why = why or f"{run.log_csv} has no loss values"
        _warn(f"{why}; rendering without the loss curve")
    epochs = _epochs(log, steps)

    accuracy = np.asarray(getattr(analysis, "accuracy", np.full(n_snap, np.nan)), dtype=float)
    titles, subtitles = [], []
    for i, step in enumerate(steps):
        parts = [f"step {step:,}"]
        if np.isfinite(epochs[i]):
            parts.append(f"epoch {epochs[i]:.2f}")
        if np.isfinite(accuracy[i]):
            parts.append(f"eval accuracy {accuracy[i]:.0%}")
        titles.append("   ·   ".join(parts))
        subtitles.append(f"{run.root.name}: snapshot {i + 1} of {n_snap}, {len(labels):,} images")

    if dpi is None:
        dpi = _DESIGN_DPI * min(size[0] / DEFAULT_SIZE[0], size[1] / DEFAULT_SIZE[1])
    return Scene(
        steps=steps,
        coords=coords,
        labels=labels,
        class_names=list(analysis.class_names),
        titles=titles,
        subtitles=subtitles,
        board=board,
        board_scores=board_scores,
        ids=list(analysis.ids),
        thumbs=thumbs,
        loss=loss,
        loss_note="" if loss is not None else f"not shown: {why.replace(str(run.root) + os.sep, '')}",
        top_k=top_k,
        tween=tween,
        size=tuple(size),
        dpi=float(dpi),
        order=np.random.default_rng(0).permutation(len(labels)),
    )


# --- the figure: built once, artists updated per frame ---------------------------------


@dataclass
class _Layout:
    """Axes rectangles in figure fractions (left, bottom, width, height)."""

    scatter: tuple
    board: list[tuple]  # one per leaderboard slot
    loss: tuple
    thumb_px: int


def _layout(size: tuple[int, int], top_k: int) -> _Layout:
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


class Renderer:
    """One Agg figure per process; ``render(frame)`` returns (H, W, 3) uint8 RGB.

    The returned array is a view of the canvas buffer, valid until the next ``render``.
    """

    def __init__(self, scene: Scene):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.scene = s = scene
        w, h = s.size
        # +0.25 px: Agg truncates the figure size to whole pixels.
        self.fig = fig = Figure(figsize=((w + 0.25) / s.dpi, (h + 0.25) / s.dpi), dpi=s.dpi)
        self.canvas = FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        lay = _layout(s.size, s.top_k)

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
        blank = _placeholder(lay.thumb_px)
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


# --- encoders (run where the frame is rendered) and sinks (write the file, in order) ---


def _gif_duration_ms(fps: float, frame: int, n_frames: int) -> int:
    # The last frame is held for at least 1.5 s so a looping GIF shows the end state.
    ms = 1000.0 / fps
    return int(round(max(ms, 1500.0) if frame == n_frames - 1 and n_frames > 1 else ms))


class _Encoder:
    """Turns a rendered RGB frame into what the sink writes (bytes or text)."""

    def __init__(self, fmt: str, fps: float, n_frames: int):
        self.fmt, self.fps, self.n_frames = fmt, fps, n_frames

    def __call__(self, frame: int, rgb: np.ndarray):
        from PIL import Image

        if self.fmt == "mp4":
            return np.ascontiguousarray(rgb).tobytes()
        if self.fmt == "html":
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)
            return base64.encodebytes(buf.getvalue()).decode("ascii")
        # GIF: quantize here (in parallel when there are workers), keep a local colour
        # table per frame, and let Pillow LZW-encode the frame.
        from PIL import GifImagePlugin

        im = Image.fromarray(rgb).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        duration = _gif_duration_ms(self.fps, frame, self.n_frames)
        return b"".join(
            GifImagePlugin.getdata(im, include_color_table=True, duration=duration, disposal=1)
        )


class _GifSink:
    """Streams an animated GIF, one frame at a time.

    Pillow's ``save(save_all=True)`` and imageio's pillow plugin both hold every frame
    until the file is closed; Pillow's frame-level GIF API (``getheader``/``getdata``)
    lets each frame be written and forgotten.
    """

    def __init__(self, path: Path, size: tuple[int, int]):
        from PIL import GifImagePlugin, Image

        self.fp = open(path, "wb")
        header, _ = GifImagePlugin.getheader(Image.new("P", size), info={"loop": 0, "duration": 1})
        self.fp.write(b"".join(header))  # loop 0: repeat forever

    def write(self, payload: bytes) -> None:
        self.fp.write(payload)

    def close(self, ok: bool) -> None:
        if ok:
            self.fp.write(b";")  # GIF trailer
        self.fp.close()


class _Mp4Sink:
    """H.264 (libx264, yuv420p) through imageio-ffmpeg, frames piped as they come."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        self.gen = imageio_ffmpeg.write_frames(
            str(path), size, fps=fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", quality=7, macro_block_size=2, ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        )
        self.gen.send(None)

    def write(self, payload: bytes) -> None:
        self.gen.send(payload)

    def close(self, ok: bool) -> None:
        self.gen.close()


class _HtmlSink:
    """matplotlib's JavaScript player (play/pause, slider, loop modes) with embedded PNGs."""

    def __init__(self, path: Path, fps: float):
        from matplotlib.animation import HTMLWriter
        from matplotlib.figure import Figure

        # embed_limit in MB: the default (20) silently drops frames past the limit.
        self.writer = HTMLWriter(fps=fps, embed_frames=True, default_mode="loop", embed_limit=1e6)
        self.writer.setup(Figure(), path)

    def write(self, payload: str) -> None:
        # HTMLWriter.grab_frame would re-render through savefig; the frame is already a PNG.
        self.writer._saved_frames.append(payload)

    def close(self, ok: bool) -> None:
        if ok:
            self.writer.finish()
            # The template takes its button icons from a CDN; draw them with plain
            # characters instead so the player works offline.
            path = Path(self.writer.outfile)
            html = re.sub(r"<link[^>]*font-awesome[^>]*>", lambda m: _OFFLINE_ICONS, path.read_text("utf-8"))
            path.write_text(html, "utf-8")


_OFFLINE_ICONS = r"""<style>
.anim-buttons .fa { font-style: normal; font-size: 13px; }
.fa-minus::before { content: "\2212"; }
.fa-plus::before { content: "+"; }
.fa-fast-backward::before { content: "|\25C0\25C0"; }
.fa-step-backward::before { content: "|\25C0"; }
.fa-play::before { content: "\25B6"; }
.fa-flip-horizontal { display: inline-block; transform: scaleX(-1); }
.fa-pause::before { content: "\275A\275A"; }
.fa-step-forward::before { content: "\25B6|"; }
.fa-fast-forward::before { content: "\25B6\25B6|"; }
</style>"""


def _ffmpeg_exe() -> str:
    """The ffmpeg executable imageio-ffmpeg will use; ExportError if there is none."""
    import shutil

    hint = "install it with `pip install imageio-ffmpeg` or export a .gif instead"
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ExportError(f"imageio-ffmpeg is not installed, needed for .mp4; {hint}") from None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise ExportError(f"no ffmpeg found for .mp4; {hint}") from None
    if not (Path(exe).is_file() and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
        raise ExportError(f"ffmpeg {exe!r} (IMAGEIO_FFMPEG_EXE) does not exist; {hint}")
    return exe


# --- the frame pipeline -----------------------------------------------------------------

# The figure of a forked worker: built once in the parent, inherited by every fork.
_WORKER: tuple[Renderer, _Encoder] | None = None


def _worker_init() -> None:
    import signal

    # Ctrl-C is handled once, by the parent, which then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_chunk(frames: Sequence[int]) -> list:
    renderer, encoder = _WORKER
    return [encoder(f, renderer.render(f)) for f in frames]


@contextlib.contextmanager
def _payloads(scene: Scene, encoder: _Encoder, workers: int) -> Iterator[Iterator]:
    """Yield an iterator of encoded frames, in order.

    With ``workers > 1`` frames are rendered by that many forked processes, each with its
    own figure; at most two chunks per worker are in flight, so memory stays bounded.
    The workers start on entry (before any progress-bar thread exists) and are stopped
    on exit, also when the export is interrupted.
    """
    n = scene.n_frames
    if workers <= 1:
        renderer = Renderer(scene)
        yield (encoder(f, renderer.render(f)) for f in range(n))
        return

    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers start in milliseconds with the figure already built (here, once),
    # and a script calling export() needs no `if __name__ == "__main__":` guard.
    global _WORKER
    _WORKER = (Renderer(scene), encoder)
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init
    )
    try:
        todo = iter([list(range(a, min(a + _CHUNK, n))) for a in range(0, n, _CHUNK)])
        pending = deque(pool.submit(_worker_chunk, c) for c in itertools.islice(todo, 2 * workers))

        def frames():
            while pending:
                done = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(_worker_chunk, nxt))
                yield from done

        yield frames()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _WORKER = None


def _auto_workers(n_frames: int) -> int:
    """2 processes for long exports where forking is safe: Linux-like, 2+ cores, and no
    other threads in this process (a thread holding a lock at fork time can deadlock
    the child; Jupyter kernels, for example, run several)."""
    import multiprocessing
    import threading

    if n_frames < _PARALLEL_MIN_FRAMES or (os.cpu_count() or 1) < 2:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return 1
    return 2 if threading.active_count() == 1 else 1


def write_animation(
    scene: Scene,
    out: Path,
    *,
    fps: float,
    workers: int | None = None,
    quiet: bool = False,
) -> int:
    """Render every frame of ``scene`` into ``out`` (.gif/.mp4/.html); returns the frame count.

    The file appears under its final name only once it is complete.
    """
    from tqdm import tqdm

    fmt = FORMATS[out.suffix.lower()]
    n = scene.n_frames
    workers = _auto_workers(n) if workers is None else max(1, int(workers))
    encoder = _Encoder(fmt, fps, n)
    with atomic_path(out) as tmp:
        if fmt == "gif":
            sink = _GifSink(tmp, scene.size)
        elif fmt == "mp4":
            sink = _Mp4Sink(tmp, scene.size, fps)
        else:
            sink = _HtmlSink(tmp, fps)
        ok = False
        try:
            with _payloads(scene, encoder, workers) as payloads, tqdm(
                total=n, desc=f"export {out.name}", unit="frame", disable=quiet, leave=False
            ) as bar:
                for payload in payloads:
                    sink.write(payload)
                    bar.update()
            ok = True
        finally:
            sink.close(ok)
    return n


def write_still(scene: Scene, out: Path, *, snapshot: int = -1) -> Path:
    """Write the frame of one snapshot (default the last) as a PNG picture."""
    from PIL import Image

    snapshot = range(len(scene.steps))[snapshot]
    rgb = Renderer(scene).render(snapshot * (scene.tween + 1))
    with atomic_path(out) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return out


# --- the public entry point ---------------------------------------------------------------


def _parse_size(size) -> tuple[int, int]:
    if size is None:
        return DEFAULT_SIZE
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise ExportError(f"size {size!r} is not WxH in pixels, e.g. 1280x720") from None
    else:
        w, h = (int(v) for v in size)
    if w < 320 or h < 180:
        raise ExportError(f"size {w}x{h} is too small to lay out a frame; use at least 320x180")
    return w, h


def _check_out(path: Path, what: str) -> None:
    if not path.parent.is_dir():
        raise ExportError(
            f"cannot write {what} {path}: directory {path.parent} does not exist; "
            f"create it or choose another path"
        )


def export(
    run,
    out: str | os.PathLike | None = None,
    *,
    fps: float | None = None,
    size: tuple[int, int] | str | None = None,
    dpi: float | None = None,
    tween: int = 0,
    top_k: int = 8,
    force: bool = False,
    still: str | os.PathLike | None = None,
    still_step: int | None = None,
    workers: int | None = None,
    quiet: bool = False,
    html_player: str = "interactive",
    highlight: Sequence[str] = (),
) -> Path:
    """Render the approved analysis of ``run`` as an animation; returns the path written.

    The format follows the suffix of ``out``: ``.gif`` (default ``RUN/animation.gif``,
    loops forever), ``.mp4`` (H.264) or ``.html`` (self-contained player). There are
    ``S + tween * (S - 1)`` frames for ``S`` snapshots; ``fps`` defaults to two snapshots
    per second whatever ``tween`` is (at most 50 fps). ``size`` is ``(W, H)`` or ``"WxH"`` in pixels
    (default 1280x720); ``dpi`` scales text and markers (default: as designed at 1280x720).

    ``still=FILE.png`` writes the frame of one snapshot as a picture (``still_step``,
    default the last) *instead of* the animation; give ``out`` as well to get both.
    The return value is then the still, or the animation when both are written.

    Refuses (``ExportError``) unless the review is approved and the approval is current;
    ``force=True`` renders anyway, prints a warning and records ``forced`` in export.json.
    ``workers``: processes that render frames (default: 2 for 16+ frames on 2+ cores
    where forking is safe, else 1); ``quiet`` hides the progress bar, not the warnings.

    ``.html`` is the interactive player (``spotreview.player``) unless ``html_player`` is
    ``"frames"`` (matplotlib's player over the GIF's frames); ``highlight`` ids start pinned.
    """
    from .reviewing import approval_status

    run = Run(run).require()
    anim = None
    if out is not None or still is None:
        anim = Path(out) if out is not None else run.root / "animation.gif"
        fmt = FORMATS.get(anim.suffix.lower())
        if fmt is None:
            raise ExportError(
                f"cannot export to {anim}: unknown format {anim.suffix or '(no suffix)'!r}; "
                f"use .gif, .mp4 or .html"
            )
        _check_out(anim, "the animation to")
    if html_player not in ("interactive", "frames"):
        raise ExportError(f"html_player must be 'interactive' or 'frames', got {html_player!r}")
    interactive = anim is not None and FORMATS[anim.suffix.lower()] == "html" and html_player == "interactive"
    if highlight and not interactive:
        raise ExportError("--highlight is drawn by the interactive .html player only (for now)")
    if still is None and still_step is not None:
        raise ExportError("still_step picks the frame of --still; give --still FILE.png too")
    if still is not None:
        still = Path(still)
        if still.suffix.lower() != ".png":
            raise ExportError(f"--still {still} must be a .png file")
        _check_out(still, "the still to")

    tween = int(tween)
    top_k = int(top_k)
    if tween < 0:
        raise ExportError(f"tween must be 0 or more frames between snapshots, got {tween}")
    if top_k < 1:
        raise ExportError(f"top_k must be at least 1, got {top_k}")
    fps = float(fps) if fps is not None else min(2.0 * (tween + 1), _GIF_MAX_FPS)
    if not fps > 0:
        raise ExportError(f"fps must be positive, got {fps:g}")
    if anim is not None and FORMATS[anim.suffix.lower()] == "gif" and fps > _GIF_MAX_FPS:
        raise ExportError(
            f"fps {fps:g} is too fast for a GIF (viewers slow frames under 20 ms to 100 ms); "
            f"use --fps {_GIF_MAX_FPS} or less, or .mp4"
        )
    width, height = _parse_size(size)
    if anim is not None and FORMATS[anim.suffix.lower()] == "mp4":
        _ffmpeg_exe()
        if width % 2 or height % 2:
            width, height = width + width % 2, height + height % 2
            _warn(f"H.264 needs an even frame size; using {width}x{height}")
    if dpi is not None and not dpi > 0:
        raise ExportError(f"dpi must be positive, got {dpi:g}")

    status = approval_status(run)
    if status.state != "approved":
        # The status message says why; its own advice is replaced by the full one here.
        if status.state == "missing":
            what, again = f"it is not approved (no {run.approval.name})", ""
        else:
            why = status.message.split(";")[0].removeprefix("stale:").strip()
            what, again = f"its approval is stale ({why})", " again"
        if not force:
            raise ExportError(
                f"cannot export {run.root}: {what}; review it with `spotreview review "
                f"{run.root}`, approve it{again} with `spotreview approve {run.root}`, "
                f"or pass --force to export anyway"
            )

    from .analysis import load_analysis

    analysis = load_analysis(run)
    exclusions = run.read_exclusions()
    snapshot = -1
    if still_step is not None:
        matches = np.flatnonzero(np.asarray(analysis.steps) == int(still_step))
        if not len(matches):
            raise ExportError(
                f"no snapshot at step {still_step}; snapshots are at steps "
                f"{', '.join(str(int(s)) for s in analysis.steps)}"
            )
        snapshot = int(matches[0])
    if status.state != "approved":
        _warn(f"exporting {run.root} although {what}; forced, recorded in {run.export_record.name}")
    scene = build_scene(
        analysis, exclude=exclusions, top_k=top_k, tween=tween, size=(width, height), dpi=dpi
    )

    frames = 0
    if interactive:
        from .player import player_data, write_player

        data = player_data(analysis, exclude=exclusions, top_k=top_k)
        write_player(anim, data, snapshots_per_second=fps / (tween + 1), highlight=highlight)
        frames = len(data.steps)  # key frames: the page interpolates between them
    elif anim is not None:
        frames = write_animation(scene, anim, fps=fps, workers=workers, quiet=quiet)
    if still is not None:
        write_still(scene, still, snapshot=snapshot)

    record = status.record or {}
    write_json(
        run.export_record,
        {
            "out": str(anim) if anim is not None else None,
            "format": FORMATS[anim.suffix.lower()] if anim is not None else None,
            "html_player": html_player if interactive else None,
            "highlight": list(highlight),
            "frames": frames,
            "still": str(still) if still is not None else None,
            "fps": fps,
            "size": [width, height],
            "tween": tween,
            "top_k": top_k,
            "excluded": len(exclusions),
            "forced": bool(force and status.state != "approved"),
            "approval": {
                "state": status.state,
                "message": status.message,
                "digest": record.get("digest"),
            },
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return anim if anim is not None else still
