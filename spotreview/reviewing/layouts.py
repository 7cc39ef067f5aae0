"""Spotlight layouts: the default review layout built in code, and layout files to share.

* ``default_layout()`` is the layout built in code; ``layouts/review.json`` in the repository
  is ``save_layout`` of it. ``load_layout(path)`` validates any layout file, including
  those saved from Spotlight's UI ("Save Layout").
* ``import_spotlight()`` imports Renumics Spotlight quietly. Neither importing this module nor
  building a layout changes the environment: Spotlight's analytics opt-out is set when a
  review is served (:mod:`spotreview.reviewing.review`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spotreview.errors import ReviewError
from spotreview.reviewing.served import PLUGIN, plugin_available
from spotreview.rundir.atomic import write_text

# Names of the widgets in the default layout; the browser test finds the plots by them.
FIRST_PLOT = "first snapshot (aligned PCA)"
LAST_PLOT = "last snapshot (aligned PCA)"
LABEL_QUALITY_PLOT = "label quality, last (lower = worse)"
LABEL_ISSUES_TABLE = "likely mislabelled first"
DATA_MAP_PLOT = "data map (x variability, y confidence)"
ISSUES_WIDGET = "issues"
#: The data map's axes and colour (Dataset Cartography): variability, confidence, region (a
#: three-name legend reads at a glance; a colour scale's legend covers the easy corner).
DATA_MAP_COLUMNS = ("confidence_std", "confidence_mean", "data_map_region")

# What the spotreview Spotlight plugin (renumics/spotlight_plugins/spotreview) adds to a page;
# its frontend registers the widget and the lens under these keys.
SNAPSHOTS_WIDGET = "spotreview-snapshots"  # every snapshot's aligned 2-D coordinates, played
SNAPSHOTS_PLOT = "snapshots (aligned PCA, played)"
EXCLUDE_LENS = "SpotreviewExcludeLens"  # exclude toggle and reason for the inspected image
EXCLUDE_COLUMNS = ("exclude", "exclude_reason")


# --- Spotlight import ------------------------------------------------------------------


def import_spotlight():
    """Import ``renumics.spotlight`` without its import-time log lines; sets no environment
    variable (the analytics choice is made when the review is served, see ``review``)."""
    from loguru import logger

    # Spotlight logs optional-analyzer warnings (e.g. cleanvision missing) at import time.
    logger.disable("renumics")
    from renumics import spotlight

    return spotlight


# --- layouts ---------------------------------------------------------------------------


#: Inspector lenses of the default layout: (lens kind, column, title), in reading order.
INSPECTOR_LENSES = (
    ("image", "image", "image"),
    ("markdown", "summary", "what decides (label, prediction, outlier rank, label quality)"),
    ("sequences", "outlier_rank_trajectory", "outlier rank over training (1 = most atypical)"),
    ("sequences", "outlier_score_trajectory", "outlier score over training (lower = more atypical)"),
)


def default_layout(columns: Iterable[str] | None = None, *, plugin: bool | None = None):
    """The default review layout (a ``renumics.spotlight.layout.nodes.Layout``).

    Top: the first and the last snapshot as scatterplots of the aligned PCA columns,
    coloured by label (not Spotlight's similarity map, whose PCA would re-project and undo
    the alignment); the data map (variability ``confidence_std`` across, confidence
    ``confidence_mean`` up, coloured by ``data_map_region``, as in Dataset Cartography);
    and an inspector: the image, titled values that help a decision, and the image's
    outlier rank and score over every snapshot as line plots. Bottom: Spotlight's Issues
    widget (the groups of :mod:`spotreview.reviewing.issues`); the table, most atypical
    images at the last snapshot first; histograms of the outlier scores; the images most
    likely mislabelled first (cleanlab label quality, lower = worse) as a table and a
    histogram, and the outlier status.

    With the spotreview plugin (``plugin``; None: when :func:`plugin_available`), the top
    also plays every snapshot (``SNAPSHOTS_WIDGET``, between the data map and the inspector),
    and the inspector starts with the exclude lens (``EXCLUDE_LENS``).

    ``columns``: the table's columns; widgets and lenses naming others are left out (a
    run without probabilities has no predictions, label quality or data map). None:
    everything.
    """
    import_spotlight()
    from renumics.spotlight import layout as L
    from renumics.spotlight.layout import lenses

    have = (lambda *cs: True) if columns is None else (lambda *cs, _c=set(columns): set(cs) <= _c)

    def lens(kind, column, title):
        view = getattr(lenses, kind)(column, name=title)
        view.id = f"lens-{column}"  # a fixed key (default: a random uuid) keeps the JSON stable
        return view

    plugin = plugin_available() if plugin is None else plugin
    views = [lens(*spec) for spec in INSPECTOR_LENSES if have(spec[1])]
    if plugin and have(*EXCLUDE_COLUMNS):
        excluding = lenses.lens(EXCLUDE_LENS, list(EXCLUDE_COLUMNS), name="exclude from the export (reason)")
        excluding.id = "lens-exclude"
        views.insert(1, excluding)  # right under the image, before the values that decide
    inspector = L.inspector("image", views, num_columns=1)
    # With the player, the three plots give it room.
    plot_w, map_w, player_w, inspector_w = (17, 17, 23, 26) if plugin else (23, 22, 0, 32)
    top = [
        L.tab(L.scatterplot(name, f"pca_{w}_x", f"pca_{w}_y", color_by_column="label"), weight=plot_w)
        for name, w in ((FIRST_PLOT, "first"), (LAST_PLOT, "last"))
    ]
    if have(*DATA_MAP_COLUMNS):
        x, y, colour = DATA_MAP_COLUMNS
        top.append(L.tab(L.scatterplot(DATA_MAP_PLOT, x, y, color_by_column=colour), weight=map_w))
    if plugin:
        top.append(L.tab(_plugin_widget(SNAPSHOTS_WIDGET, SNAPSHOTS_PLOT), weight=player_w))
    top.append(L.tab(inspector, weight=inspector_w))
    table = L.table("review table", sort_by_columns=[("outlier_rank_last", "ascending")])
    scores = [L.histogram(f"outlier score, {w} snapshot", f"outlier_score_{w}", "label") for w in ("last", "first")]
    issues = (
        [
            L.table(
                LABEL_ISSUES_TABLE,
                visible_columns=["id", "label", "prediction_last", "label_quality_last", "is_label_issue_last"],
                sort_by_columns=[("label_quality_last", "ascending")],
            )
        ]
        if have("label_quality_last")
        else []
    )
    issues += [
        L.histogram(title, column, "label")
        for title, column in (
            (LABEL_QUALITY_PLOT, "label_quality_last"),
            ("outlier status (first -> last)", "outlier_status"),
        )
        if have(column)
    ]
    bottom = [L.tab(L.issues(ISSUES_WIDGET), weight=24), L.tab(table, weight=44), L.tab(*scores, weight=16)]
    if issues:
        bottom.append(L.tab(*issues, weight=16))
    return L.layout(L.split(*top, weight=60), L.split(*bottom, weight=40))


def _plugin_widget(kind: str, name: str):
    """A widget of the spotreview plugin: Spotlight's base model keeps any type string."""
    from renumics.spotlight.layout.widgets import Widget

    return Widget(type=kind, name=name)


def layout_json(layout) -> str:
    """A layout as the JSON text spotreview writes: by alias, as Spotlight's UI saves it."""
    return layout.model_dump_json(by_alias=True, indent=2) + "\n"


def save_layout(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the default layout as JSON to ``path`` (atomically) for a teammate to edit."""
    path = Path(path)
    if path.exists() and not force:
        raise ReviewError(f"{path} already exists; pass --force to overwrite it")
    if path.is_dir():
        raise ReviewError(f"{path} is a directory; give a file name such as {path / 'review.json'}")
    if not path.parent.is_dir():
        raise ReviewError(f"folder {path.parent} does not exist; create it first or give another file name")
    write_text(path, layout_json(default_layout()))
    return path


def layout_widgets(node) -> Iterable[Any]:
    """Every widget of a layout (or of one of its splits or tabs), depth first."""
    for child in getattr(node, "children", []):
        if getattr(child, "kind", None) == "widget":
            yield child
        else:
            yield from layout_widgets(child)


def load_layout(path: str | os.PathLike):
    """Read and validate a Spotlight layout file (``spotreview layout save`` or the UI's
    "Save Layout"); raise a one-line ``ReviewError`` when it is missing, not JSON, not a
    layout, or names a widget type Spotlight does not have."""
    import_spotlight()
    from pydantic import ValidationError
    from renumics.spotlight.layout.nodes import Layout
    from renumics.spotlight.layout.widgets import Widget

    path = Path(path)
    if not path.is_file():
        raise ReviewError(f"layout file {path} not found; write the default with `spotreview layout save {path}`")
    too_deep = ReviewError(
        f"layout file {path} is nested too deeply to be a layout; start from `spotreview layout save FILE`"
    )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReviewError(f"layout file {path} is not valid JSON ({e})") from e
    except RecursionError:
        raise too_deep from None
    try:
        layout = Layout.model_validate(obj)
    except RecursionError:
        raise too_deep from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ReviewError(
            f"layout file {path} is not a Spotlight layout: {where}: {first['msg']} "
            f"({e.error_count()} problem(s)); start from `spotreview layout save FILE`"
        ) from e
    # Spotlight's model accepts any widget type string and keeps it as the base class;
    # the UI would then show an empty tab, so unknown types are refused here.
    known = sorted(sub.model_fields["type"].default for sub in Widget.__subclasses__())
    plugins = {w.type for w in layout_widgets(layout) if type(w) is Widget and w.type == SNAPSHOTS_WIDGET}
    if plugins and not plugin_available():
        raise ReviewError(
            f"layout file {path} has the {SNAPSHOTS_WIDGET} widget, but the spotreview Spotlight plugin "
            f"({PLUGIN}) is not installed; reinstall spotreview (`pip install -e .` in a checkout)"
        )
    unknown = sorted({w.type for w in layout_widgets(layout) if type(w) is Widget} - plugins)
    if unknown:
        raise ReviewError(
            f"layout file {path} has unknown widget type(s) {', '.join(map(repr, unknown))}; "
            f"Spotlight knows {', '.join(known)}"
        )
    return layout


# Keys of a layout (as saved, by alias) whose string value names a table column.
_COLUMN_KEYS = ("xAxisColumn", "yAxisColumn", "colorBy", "sizeBy", "columnKey", "stackByColumnKey")


def layout_columns(layout) -> set[str]:
    """The table columns a layout's widgets and lenses name (scatterplot axes and colours,
    histogram columns, table sorting, inspector lenses, similarity-map inputs)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _COLUMN_KEYS and isinstance(value, str):
                    found.add(value)
                elif key in ("columns", "placeBy", "visibleColumns") and isinstance(value, list):
                    found.update(v for v in value if isinstance(v, str))
                elif key == "sorting" and isinstance(value, list):
                    found.update(s[0] for s in value if isinstance(s, list) and s and isinstance(s[0], str))
                else:
                    walk(value)

    walk(json.loads(layout.model_dump_json(by_alias=True)))
    return found


def check_layout_columns(layout, columns: Iterable[str], where) -> None:
    """ReviewError naming the columns ``layout`` (from ``where``) uses that the table lacks."""
    missing = sorted(layout_columns(layout) - set(columns))
    if missing:
        raise ReviewError(
            f"layout {where} names column(s) the review table does not have: "
            f"{', '.join(missing)}; edit the layout or start from `spotreview layout save FILE`"
        )
