"""The two-run comparison as one self-contained HTML page: two interactive players side by side.

The page (``assets/compare.{html,css,js}``, inlined at write time: no network, opens from disk)
holds both runs' player data (the data JSON of :mod:`spotreview.rendering.player`, B's rows in
A's order), one copy of the thumbnails' sprite atlases (the images are the same), and the
player's page template. Its script builds the two players as ``<iframe srcdoc>`` pages (the
player itself, unchanged), drives both from one clock over the comparison's key frames (the
sync values of :class:`~spotreview.rendering.compare_scene.ComparisonScene`), shows a point
hovered or pinned in one panel in the other too (the player's ``spotreview:hover`` and
``spotreview:pin`` events), and lists the change counts and the images whose outcome differs
most, as the GIF does.

What the file holds besides the players' scripts (``<script type="application/json">``):
``compare-data`` (format, run names, sync mode, key frames, each run's sync value and step per
snapshot, pace, change counts and colours, the leaderboard), ``player-template`` (the player
page as a JSON string, its ``@@TITLE@@``, ``@@DATA@@`` and ``@@ATLAS@@`` left for the script),
``panel-a-data``, ``panel-b-data`` and ``compare-atlas``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np

from spotreview.rendering.compare_figure import SYNC_WORDS
from spotreview.rendering.player import fill_page, page_parts, player_data
from spotreview.rendering.rings import IssueRings
from spotreview.rendering.style import CHANGE_COLORS
from spotreview.rundir.atomic import atomic_path

FORMAT = "spotreview-compare/1"


def _json(value) -> str:
    """Compact JSON with "<" escaped, so no text can end its ``<script>`` element."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _rounded(values: np.ndarray) -> list[float]:
    """Sync values to 9 significant digits (steps stay whole numbers)."""
    return [float(f"{v:.9g}") for v in np.asarray(values, dtype=np.float64)]


def comparison_doc(scene, *, pace: float, titles: list[str], thumbs: dict) -> dict:
    """The page's ``compare-data``: what the script needs besides the two players' data."""
    change = scene.counts
    board = [
        {"row": int(row), "id": scene.ids[int(row)], "kind": kind, "head": head, "foot": foot}
        for row, kind, head, foot in zip(scene.board, scene.kinds, scene.heads, scene.feet)
    ]
    return {
        "format": FORMAT,
        "names": list(scene.names),
        "titles": titles,
        "n": len(scene.ids),
        "sync": scene.sync,
        "sync_words": SYNC_WORDS[scene.sync],
        "keys": _rounded(scene.keys),
        "values": [_rounded(v) for v in scene.values],
        "steps": [np.asarray(p.steps, np.int64).tolist() for p in scene.panels],
        "pace": float(pace),
        "counts": change,
        "change_colors": CHANGE_COLORS,
        "board": board,
        "thumbs": thumbs,
    }


def write_comparison_player(
    path: str | Path, scene, analyses, *, exclude: Mapping[str, str], snapshots_per_second: float = 2.0
) -> int:
    """Write the comparison page of ``scene`` (a ``ComparisonScene``) to ``path`` (atomically);
    returns its key frames.

    ``analyses``: run A's and run B's analysis, B's rows in A's order (the scene's);
    ``exclude``: {id: reason} of both runs, shown in the players and skipped on their boards;
    ``snapshots_per_second``: key frames per second at speed 1x.
    """
    a, b = analyses
    data_a = player_data(a, exclude=exclude, top_k=scene.top_k, scene=scene.panels[0])
    data_b = player_data(b, exclude=exclude, top_k=scene.top_k, scene=scene.panels[1], thumbs=data_a.thumbs)
    # The images whose outcome differs most are ringed in both players, as the GIF rings them.
    data_a.issue = data_b.issue = IssueRings("differs_most", "outcome differs most (A vs B)", scene.board)
    parts_b = page_parts(data_b, snapshots_per_second=snapshots_per_second, atlas=False)
    parts_a = page_parts(data_a, snapshots_per_second=snapshots_per_second, reserve=len(parts_b["DATA"].encode()))
    template = fill_page({"CSS": parts_a["CSS"], "JS": parts_a["JS"]})
    thumbs = json.loads(re.search(r'^"thumbs": (\{.*\}),$', parts_a["DATA"], re.M).group(1))
    # B's player reads A's atlases (the same images): it takes their layout too.
    parts_b["DATA"] = re.sub(
        r'^"thumbs": .*(?=,$)', lambda _: '"thumbs": ' + json.dumps(thumbs), parts_b["DATA"], count=1, flags=re.M
    )
    doc = comparison_doc(scene, pace=snapshots_per_second, titles=[parts_a["TITLE"], parts_b["TITLE"]], thumbs=thumbs)
    assets = resources.files("spotreview.rendering") / "assets"
    fields = {
        "TITLE": html.escape(f"{scene.names[0]} vs {scene.names[1]}: {len(scene.ids):,} images"),
        "CSS": (assets / "compare.css").read_text("utf-8"),
        "JS": (assets / "compare.js").read_text("utf-8"),
        "COMPARE": _json(doc),
        "TEMPLATE": _json(template),
        "DATA_A": parts_a["DATA"],
        "DATA_B": parts_b["DATA"],
        "ATLAS": parts_a["ATLAS"],
    }
    page = re.sub(r"@@(\w+)@@", lambda m: fields[m.group(1)], (assets / "compare.html").read_text("utf-8"))
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return len(scene.keys)
