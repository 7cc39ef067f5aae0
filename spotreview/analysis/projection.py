"""How the 2-D picture is made: each snapshot's PCA, and the alignment of all of them into one frame.

* **2-D PCA** (:func:`pca_2d`): deterministic, as sklearn's ``PCA(2, svd_solver="covariance_eigh")``
  (signs fixed as sklearn fixes them; only the two leading eigenvectors computed).
* **alignment** (:func:`align_frames`): every snapshot's 2-D PCA is rotated/reflected into one
  shared frame of reference (``scipy.linalg.orthogonal_procrustes`` on centred coordinates,
  translated onto the reference's centre). Real scale is kept, so a snapshot whose classes
  spread out is drawn bigger. This deliberately differs from the seed article, which used
  ``scipy.spatial.procrustes`` and thereby rescaled every frame to unit size. The disparity
  recorded per frame is still the one ``scipy.spatial.procrustes`` reports (on standardised
  copies; about 0 for a frame that is a rotated/reflected/scaled copy of its reference).
  ``align="last"`` (default) aligns every frame to the final one; ``"previous"`` chains each
  frame onto the already aligned frame before it, starting from the first; ``"none"`` leaves
  the raw PCA frames (disparity NaN: there is no reference).

scipy is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

from spotreview.defaults import ALIGN, ALIGN_MODES, AlignMode
from spotreview.errors import AnalysisError


def pca_2d(x: np.ndarray) -> np.ndarray:
    """(n, 2) float64 PCA coordinates of ``x`` (n, dim) float, as
    ``PCA(2, svd_solver="covariance_eigh").fit_transform(x)``.

    sklearn's covariance-eigh solver written out (no randomness, signs fixed the way sklearn's
    ``svd_flip`` fixes them), so ``analyze`` need not import ``sklearn.decomposition``; only the
    two leading eigenvectors are computed (LAPACK ``syevr`` with a subset). A test checks the
    result against sklearn's to float rounding.
    """
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    n, dim = x.shape
    mean = x.mean(axis=0)
    cov = x.T @ x  # the (dim, dim) GEMM, on all of BLAS's threads
    cov -= n * mean[:, None] * mean[None, :]
    cov /= n - 1
    # Multi-threaded OpenBLAS eigh can stall for seconds when the cores are busy; on one thread
    # it never does (benchmarks/RESULTS.md).
    with threadpool_limits(limits=1, user_api="blas"):
        _, vectors = eigh(cov, subset_by_index=[dim - 2, dim - 1])
    components = vectors[:, ::-1].T  # largest eigenvalue first
    signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
    components = components * signs[:, None]
    coords = x @ components.T
    coords -= mean[None, :] @ components.T
    return coords.astype(np.float64)


def align_frames(raw: np.ndarray, align: AlignMode = ALIGN) -> tuple[np.ndarray, np.ndarray]:
    """Rotate/reflect 2-D frames into one frame of reference, keeping their real scale.

    ``raw``: (S, n, 2) float. Returns ``coords`` (S, n, 2) float32 and ``disparity`` (S,)
    float64 as ``scipy.spatial.procrustes`` reports it against each frame's reference
    ("last": the final frame; "previous": the already-aligned frame before, the first frame
    is its own reference; "none": frames untouched, disparity NaN).
    """
    from scipy.linalg import orthogonal_procrustes
    from scipy.spatial import procrustes

    if align not in ALIGN_MODES:
        raise AnalysisError(f"unknown alignment {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    raw = np.asarray(raw, dtype=np.float64)
    aligned = raw.copy()
    disparity = np.full(len(raw), np.nan)
    if align == "none":
        return aligned.astype(np.float32), disparity
    for i in range(len(raw)):
        if align == "last":
            ref = raw[-1]
        else:
            ref = aligned[i - 1] if i > 0 else raw[0]
        centred, ref_centre = raw[i] - raw[i].mean(0), ref.mean(0)
        rotation, _ = orthogonal_procrustes(centred, ref - ref_centre)
        aligned[i] = centred @ rotation + ref_centre
        try:
            disparity[i] = procrustes(ref, raw[i])[2]
        except ValueError:  # a frame whose points all coincide has no shape to compare
            disparity[i] = np.nan
    return aligned.astype(np.float32), disparity
