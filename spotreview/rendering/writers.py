"""Writing frames to files: per-format encoders and sinks (GIF, MP4, HTML), the worker
processes that render frames in parallel, :func:`write_animation` and :func:`write_still`.

Frames go from the canvas buffer straight to the encoder (no PNG round trip); GIF and MP4
frames are streamed to the file as they are made, so memory does not grow with the number
of frames (the HTML player holds its PNG-compressed frames until the file is written,
since they all live in one file). Long exports are rendered by two forked processes, each
with its own copy of the figure, frames consumed in order (only where forking is safe: a
single-threaded process on Linux; elsewhere one process). Files appear under their final
name only once complete.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from spotreview.errors import ExportError
from spotreview.rendering.figure import Renderer
from spotreview.rendering.scene import Scene
from spotreview.rundir.atomic import atomic_path

FORMATS = {".gif": "gif", ".mp4": "mp4", ".html": "html", ".htm": "html"}
# Frames per second each format takes: GIF delays are stored in 1/100 s (at most 655 s)
# and most viewers slow delays under 20 ms to 100 ms; imageio-ffmpeg passes the MP4 rate
# with two decimals.
FPS_RANGE = {"gif": (0.01, 50.0), "mp4": (0.01, 240.0), "html": (0.01, 240.0)}
# Largest frame side: GIF stores sizes in 16 bits, and an RGB frame this size is already
# 8192 * 8192 * 3 bytes (200 MB) per buffer.
MAX_SIDE = 8192
# Below this, starting a second process does not pay off.
_PARALLEL_MIN_FRAMES = 16
_CHUNK = 4


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

        im = Image.fromarray(rgb).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        duration = _gif_duration_ms(self.fps, frame, self.n_frames)
        return b"".join(GifImagePlugin.getdata(im, include_color_table=True, duration=duration, disposal=1))


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
    """H.264 (libx264, yuv420p, crf 15) through imageio-ffmpeg's ffmpeg, frames piped as they come.

    ffmpeg is run here rather than through ``imageio_ffmpeg.write_frames``, which never
    checks ffmpeg's exit status (so a full disk leaves a corrupt file and no error); ``close``
    raises ``ExportError`` with ffmpeg's own last line when it fails.
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float, final: Path):
        import subprocess
        import tempfile
        from fractions import Fraction

        from spotreview.util.process import die_with_parent

        w, h = size
        cmd = [
            ffmpeg_exe(),
            "-y",
            "-f",
            "rawvideo",
            "-vcodec",
            "rawvideo",
            "-s",
            f"{w}x{h}",
            "-pix_fmt",
            "rgb24",
            "-r",
            str(Fraction(fps).limit_denominator()),
            "-i",
            "-",
            "-an",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            "15",
        ]
        if w % 2 or h % 2:  # yuv420p needs even sizes
            cmd += ["-vf", f"scale={w + w % 2}:{h + h % 2}"]
        cmd += ["-v", "error", "-movflags", "+faststart", "-f", "mp4", str(path)]
        self.path, self.stderr = final, tempfile.TemporaryFile()  # errors name the final file
        parent = os.getpid()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            preexec_fn=lambda: die_with_parent(parent),
        )

    def write(self, payload: bytes) -> None:
        try:
            self.proc.stdin.write(payload)
        except BrokenPipeError:  # ffmpeg stopped early: say why
            self.proc.wait()
            raise self._failure() from None

    def close(self, ok: bool) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
            if not ok:
                self.proc.kill()  # the export failed already; its error is the one to show
            self.proc.wait()
        if ok and self.proc.returncode != 0:
            raise self._failure()
        self.stderr.close()

    def _failure(self) -> ExportError:
        self.stderr.seek(0)
        said = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        why = said[-1] if said else f"exit status {self.proc.returncode}"
        if "No space left" in why:
            return ExportError(f"no space left on device writing {self.path}; free some space and export again")
        return ExportError(f"ffmpeg failed writing {self.path} ({why}); export again, or export a .gif")


class _HtmlSink:
    """matplotlib's JavaScript player (play/pause, slider, loop modes) with embedded PNGs."""

    def __init__(self, path: Path, fps: float):
        from matplotlib.animation import HTMLWriter
        from matplotlib.figure import Figure

        # embed_limit in MB: the default (20) silently drops frames past the limit.
        self.writer = HTMLWriter(fps=fps, embed_frames=True, default_mode="loop", embed_limit=1e6)
        # HTMLWriter takes only a lower-case suffix: it writes beside, and close() moves it.
        self.path = path
        self.writer.setup(Figure(), path.with_name(path.name + ".html"))

    def write(self, payload: str) -> None:
        # HTMLWriter.grab_frame would re-render through savefig; the frame is already a PNG.
        self.writer._saved_frames.append(payload)

    def close(self, ok: bool) -> None:
        if ok:
            self.writer.finish()
            # The template takes its button icons from a CDN; draw them with plain
            # characters instead so the player works offline.
            written = Path(self.writer.outfile)
            html = re.sub(r"<link[^>]*font-awesome[^>]*>", lambda m: _OFFLINE_ICONS, written.read_text("utf-8"))
            written.unlink()
            self.path.write_text(html, "utf-8")


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


def ffmpeg_exe() -> str:
    """The ffmpeg executable imageio-ffmpeg will use; ExportError if there is none."""
    import shutil

    hint = "install it with `pip install imageio-ffmpeg` or export a .gif instead"
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ExportError(f"imageio-ffmpeg is not installed, needed for .mp4; {hint}") from e
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise ExportError(f"no ffmpeg found for .mp4; {hint}") from e
    if not (Path(exe).is_file() and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
        raise ExportError(f"ffmpeg {exe!r} (IMAGEIO_FFMPEG_EXE) does not exist; {hint}")
    return exe


# --- the frame pipeline -----------------------------------------------------------------

# The figure of a forked worker: built once in the parent, inherited by every fork.
_WORKER: tuple[Renderer, _Encoder] | None = None


def _worker_init(parent: int) -> None:
    import signal

    from spotreview.util.process import die_with_parent

    # Ctrl-C is handled once, by the parent, which then stops the pool; a parent killed
    # outright (SIGKILL) takes its workers with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler, inherited by fork
    die_with_parent(parent)


def _worker_chunk(frames: Sequence[int]) -> list:
    renderer, encoder = _WORKER
    return [encoder(f, renderer.render(f)) for f in frames]


@contextlib.contextmanager
def _payloads(scene: Scene, encoder: _Encoder, workers: int, renderer=Renderer) -> Iterator[Iterator]:
    """Yield an iterator of encoded frames, in order.

    With ``workers > 1`` frames are rendered by that many forked processes, each with its
    own figure; at most two chunks per worker are in flight, so memory stays bounded.
    The workers start on entry (before any progress-bar thread exists) and are stopped
    on exit, also when the export is interrupted.
    """
    n = scene.n_frames
    if workers <= 1:
        drawn = renderer(scene)
        yield (encoder(f, drawn.render(f)) for f in range(n))
        return

    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers start in milliseconds with the figure already built (here, once),
    # and a script calling export() needs no `if __name__ == "__main__":` guard.
    global _WORKER
    _WORKER = (renderer(scene), encoder)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
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
    renderer=Renderer,
) -> int:
    """Render every frame of ``scene`` into ``out`` (.gif/.mp4/.html); returns the frame count.

    ``renderer``: the class that draws a frame of ``scene`` (``renderer(scene).render(frame)``
    gives (H, W, 3) uint8; a two-run comparison has its own). The file appears under its final
    name only once it is complete.
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
            sink = _Mp4Sink(tmp, scene.size, fps, out)
        else:
            sink = _HtmlSink(tmp, fps)
        ok = False
        try:
            with (
                _payloads(scene, encoder, workers, renderer) as payloads,
                tqdm(total=n, desc=f"export {out.name}", unit="frame", disable=quiet, leave=False) as bar,
            ):
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
