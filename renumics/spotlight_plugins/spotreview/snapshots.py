"""The snapshot player's data: every snapshot's aligned 2-D coordinates, drawn as the export draws them.

Coordinates come from the run's stored analysis (``load_analysis(run).coords``); colours,
axis limits, marker size and drawing order from :mod:`spotreview.rendering.style`, as the
GIF and the HTML player use them. This plugin sits above every stage of spotreview (as the
CLI does), so it may read the rendering style that the reviewing stage may not import.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from spotreview.reviewing.served import Served


def snapshot_data(served: Served) -> dict:
    """The widget's data as JSON-ready values, for ``S`` snapshots of ``n`` images of ``C`` classes.

    ``coords``: base64 of the (S, n, 2) float32 coordinates, little-endian, C order;
    ``ids`` (n,) the images, matched to the table's rows by its ``id`` column; ``labels``
    (n,) class index; ``class_names``, ``colors`` (C,); ``steps`` (S,); ``limits``
    ``[x0, x1, y0, y1]`` covering every snapshot (the GIF's, at its aspect; the widget widens
    one axis to keep equal scale); ``marker`` (``diameter`` as a share of the axes width,
    ``alpha``); ``order`` (n,) rows in drawing order. A bundle has no snapshots to play:
    ``{"available": false, "reason": ...}``.
    """
    if served.bundle:  # not an error of the request: the widget says why it is empty
        return {
            "available": False,
            "reason": "a bundle holds the first and the last snapshot only; review its run to play every one",
        }
    from spotreview.analysis.store import load_analysis
    from spotreview.rendering import style
    from spotreview.rendering.figure import DESIGN_DPI, scatter_box_px

    a = load_analysis(served.target())
    coords = np.ascontiguousarray(a.coords, dtype="<f4")
    n = len(a.ids)
    diameter_px = math.sqrt(style.marker_area(n)) * DESIGN_DPI / 72  # the GIF's, at its design size
    return {
        "available": True,
        "steps": [int(s) for s in a.steps],
        "ids": list(a.ids),
        "labels": [int(k) for k in a.labels],
        "class_names": list(a.class_names),
        "colors": style.class_hex(len(a.class_names)),
        "limits": [float(v) for v in style.axis_limits(coords, scatter_box_px())],
        "marker": {"diameter": diameter_px / scatter_box_px()[0], "alpha": style.marker_alpha(n)},
        "order": style.draw_order(a.labels, len(a.class_names)).tolist(),
        "shape": list(coords.shape),
        "coords": base64.b64encode(coords.tobytes()).decode("ascii"),
    }
