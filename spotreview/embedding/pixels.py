"""Preprocessing as tensor operations: what a plain image processor does, for a whole batch.

Most image-classification processors (ViT, DeiT, BEiT, ...) do three things: resize every
image to a fixed ``height x width``, multiply by ``rescale_factor`` (1/255) and normalise with
``image_mean`` / ``image_std``. For those, :func:`plan` reads the parameters and
:func:`apply` does the same work on stacked ``uint8`` arrays with ``torch`` (bilinear,
antialiased, on the compute device), instead of one PIL resize and a few numpy
passes per image. The result matches the processor to PIL's uint8 rounding of the resized
image (within 1 level of 255; tested).

Processors that do anything else (centre crop, shortest-edge resize, padding, other
resampling) get :func:`plan` ``None`` and go through the processor itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# PIL / transformers resampling codes -> torch.nn.functional.interpolate modes
_MODES = {2: "bilinear"}  # torch bicubic (a = -0.75) is not PIL's (a = -0.5): 20+ levels apart


def _resample_code(resample) -> int | None:
    """PIL resampling code of ``resample`` (PIL enum, int, or torchvision InterpolationMode)."""
    if resample is None:
        return 2  # transformers' default for ViT-like processors
    value = getattr(resample, "value", resample)
    if isinstance(value, str):  # torchvision InterpolationMode("bilinear")
        return {"bilinear": 2, "bicubic": 3}.get(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def plan(processor) -> dict | None:
    """Resize size, mode, scale, mean and std if ``processor`` only resizes to a fixed size,
    rescales and normalises; None when it does anything else (it must then run itself)."""
    get = lambda name, default=None: getattr(processor, name, default)  # noqa: E731
    size = get("size")
    if size is None or not get("do_resize", False):
        return None
    if not isinstance(size, dict):  # transformers' SizeDict (torchvision-backed processors)
        size = {k: getattr(size, k, None) for k in ("height", "width", "shortest_edge", "longest_edge")}
    size = {k: v for k, v in size.items() if v is not None}
    if set(size) != {"height", "width"}:
        return None
    if get("do_center_crop") or get("do_pad") or get("do_reduce_labels"):
        return None
    mode = _MODES.get(_resample_code(get("resample")))
    if mode is None:
        return None
    n_channels = 3
    mean = get("image_mean") if get("do_normalize", False) else None
    std = get("image_std") if get("do_normalize", False) else None
    if mean is not None and (np.size(mean) not in (1, n_channels) or np.size(std) not in (1, n_channels)):
        return None
    return dict(
        size=(int(size["height"]), int(size["width"])),
        mode=mode,
        scale=float(get("rescale_factor", 1 / 255)) if get("do_rescale", False) else 1.0,
        mean=None if mean is None else np.broadcast_to(np.asarray(mean, np.float32), (n_channels,)).copy(),
        std=None if std is None else np.broadcast_to(np.asarray(std, np.float32), (n_channels,)).copy(),
    )


def apply(images: Sequence, plan: dict, out: torch.Tensor) -> None:
    """Fill ``out`` ``(len(images), 3, H, W)`` (any dtype and device) with ``images`` (RGB PIL)
    preprocessed as ``plan`` says; images of the same size are resized together."""
    import torch
    import torch.nn.functional as F

    device = out.device
    # (x * scale - mean) / std as one multiply-add per channel, rounded once to out's dtype
    mean = plan["mean"] if plan["mean"] is not None else np.zeros(3, np.float32)
    std = plan["std"] if plan["std"] is not None else np.ones(3, np.float32)
    weight = torch.as_tensor(plan["scale"] / std, device=device).view(1, 3, 1, 1)
    bias = torch.as_tensor(-mean / std, device=device).view(1, 3, 1, 1)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(image.size, []).append(i)
    for rows in by_size.values():
        stacked = np.stack([np.asarray(images[i]) for i in rows])  # (b, h, w, 3) uint8
        x = torch.from_numpy(stacked).to(device).permute(0, 3, 1, 2)  # channels-last uint8
        if tuple(x.shape[-2:]) != plan["size"]:
            if device.type == "cpu":  # uint8 antialiased bilinear: Pillow's algorithm, vectorised
                x = F.interpolate(x, size=plan["size"], mode="bilinear", antialias=True)
            else:  # CUDA resizes floats only; PIL rounds its resized images to uint8
                x = F.interpolate(x.float().contiguous(), size=plan["size"], mode="bilinear", antialias=True)
                x = x.round_().clamp_(0, 255)
        target = out if len(rows) == len(images) else torch.empty_like(out[: len(rows)])
        target.copy_(x)
        torch.addcmul(bias, target, weight, out=target)  # computed in float32
        if target is not out:
            out.index_copy_(0, torch.as_tensor(rows, device=device), target)
