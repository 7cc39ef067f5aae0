"""The HTML player's per-point data for large runs: typed arrays packed as base64.

A readable line of JSON per point costs ~400 bytes at 10 snapshots (coordinates, ranks and
scores as decimal text), 43 MB at 100,000 images; packed, the same values take ~20 MB and the
page decodes them with no object per point (``benchmarks/RESULTS.md``). The ids stay
readable, one per line, in row order. ``assets/player.js`` reads either form.

Each array is ``{"dtype": "uint8" | "uint16" | "uint32" | "float32", "data": base64}`` of its
little-endian bytes, in C order:

* ``xy``: ``(S, n, 2)`` uint16, a coordinate ``lo + q * step`` per axis (``lo``, ``step``:
  two numbers each); 65535 is a missing (non-finite) coordinate. A step is 1/65534 of the
  span of the finite coordinates, finer than the readable form's 1e-4 of the axes.
* ``rank``: ``(S, n)`` uint32; ``score``: ``(S, n)`` float32 (NaN kept); ``pred``: ``(S, n)``
  class indices or null; ``labels``: ``(n,)`` class indices;
* ``dyn``: ``{name: (n,) float32}`` the dynamics values as the readable form's ``dyn`` holds
  them (region as its index, NaN where missing), or null.
"""

from __future__ import annotations

import base64

import numpy as np

#: Points x snapshots above which the page packs its per-point data (10,000 x 20 stays readable).
PACK_ABOVE = 200_000
_MISSING = 65535  # an uint16 coordinate that is not there (NaN or infinite)


def packed_points(
    *,
    ids: list[str],
    labels: np.ndarray,
    coords: np.ndarray,
    ranks: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray | None,
    dyn_names: list[str],
    dyn_rows: list[list] | None,
    n_classes: int,
) -> dict:
    """The ``packed`` field of the page's data (see the module doc): ``coords`` (S, n, 2),
    ``ranks``/``scores``/``predictions`` (S, n), ``labels`` (n,), ``dyn_rows`` n lists of
    the values named ``dyn_names`` (None for missing) or None."""
    classes = np.uint8 if n_classes <= 256 else np.uint16
    xy, lo, step = _quantized(np.asarray(coords, np.float64))
    dyn = None
    if dyn_rows is not None:
        values = np.array(dyn_rows, dtype=np.float64)  # None -> nan
        dyn = {name: _array(values[:, k], np.float32) for k, name in enumerate(dyn_names)}
    return {
        "ids": [str(i) for i in ids],
        "labels": _array(labels, classes),
        "xy": {"lo": lo, "step": step, **_array(xy, np.uint16)},
        "rank": _array(ranks, np.uint32),
        "score": _array(scores, np.float32),
        "pred": None if predictions is None else _array(predictions, classes),
        "dyn": dyn,
    }


def _quantized(coords: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """``(q, lo, step)``: (S, n, 2) uint16 with ``coords ~= lo + q * step`` per axis."""
    finite = np.isfinite(coords)
    lo, step = [], []
    q = np.full(coords.shape, _MISSING, np.uint16)
    for axis in (0, 1):
        values = coords[..., axis][finite[..., axis]]
        a, b = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        s = (b - a) / (_MISSING - 1) or 1.0
        filled = np.where(finite[..., axis], coords[..., axis], a)
        q[..., axis] = np.where(finite[..., axis], np.round((filled - a) / s), _MISSING)
        lo.append(a)
        step.append(s)
    return q, lo, step


def _array(values, dtype) -> dict:
    data = np.ascontiguousarray(np.asarray(values).astype(np.dtype(dtype).newbyteorder("<")))
    return {"dtype": np.dtype(dtype).name, "data": base64.b64encode(data.tobytes()).decode("ascii")}
