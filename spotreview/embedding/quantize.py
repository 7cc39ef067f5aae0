"""int8 inference for a model's linear layers (``--precision int8``, on a CPU).

Every ``nn.Linear`` whose shape fits becomes an :class:`Int8Linear`: its weight quantized once
per loaded snapshot (symmetric int8, one scale per output channel), its input quantized on the
fly, an int8 x int8 -> int32 product (exact), then rescaled to float32 with the bias added.
Everything else (layer norms, GELU, softmax, the attention matmuls) stays float32, and so do
the outputs.

Two kernels compute it:

* fbgemm's dynamic linear (``torch.ops.quantized.linear_dynamic``, what torch's
  ``quantize_dynamic`` runs, called directly with the weight packed once): the input quantized
  per tensor (asymmetric, 7 bits), quantization, product and rescale fused. It is used where
  torch has it: it ran the ViT-base forward ~3x faster than the other on an AVX-512 VNNI CPU
  (benchmarks/RESULTS.md), at a min cosine to fp32 of 0.998;
* ``torch._int_mm`` (oneDNN) with the input quantized per row (per token): the more precise
  (one outlier token does not coarsen the others), but its quantize and rescale passes run
  unfused and ate the int8 gain there. It stays as the fallback where torch drops the
  quantized ops (deprecated in torch 2.13), and only where it is exact: on a CPU without VNNI
  (AVX2, or oneDNN pinned to it) torch 2.13's ``_int_mm`` saturates its int16 pair sums and
  returns wrong products (:func:`int_mm_is_exact`).
"""

from __future__ import annotations

import functools
import warnings

import torch

from spotreview.errors import SpotreviewError

# int8's symmetric range: -127..127 (not -128), so a value and its negation quantize alike
_QMAX = 127.0
# Layers with a dimension that is not a multiple of 8 (a 10-class head) stay float32: int8 GEMM
# kernels (torch._int_mm on CUDA, fbgemm's packing) want multiples of 8, and a classifier head
# is a negligible share of the FLOPs while its outputs are the probabilities.
_MULTIPLE = 8


def _quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: ``x`` ``(rows, k)`` float as int8 ``(rows, k)`` with ``x ~= q * scale``,
    ``scale`` ``(rows, 1)`` float32, one per row (an all-zero row gets scale 1)."""
    x = x.float()
    low, high = torch.aminmax(x, dim=-1, keepdim=True)  # one pass over x
    amax = torch.maximum(-low, high)
    scale = torch.where(amax > 0, amax / _QMAX, 1.0)
    # |x| / scale <= 127 by construction: no clamp (a pass over x saved)
    return torch.round(x / scale).to(torch.int8), scale


def fits(linear: torch.nn.Module) -> bool:
    """Whether ``linear`` (an ``nn.Linear``) is computed in int8: both of its dimensions
    multiples of 8 (a 10-class head is not: it stays float32)."""
    return linear.in_features % _MULTIPLE == 0 and linear.out_features % _MULTIPLE == 0


def fbgemm_available() -> bool:
    """Whether torch has fbgemm's dynamic int8 linear (x86 builds of torch 2.13 do)."""
    ops = torch.ops.quantized
    return (
        "fbgemm" in torch.backends.quantized.supported_engines
        and hasattr(ops, "linear_prepack")
        and hasattr(ops, "linear_dynamic")
    )


def _fbgemm_packed(weight_q: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
    """fbgemm's packed form of the int8 weight ``(out, in)`` with its per-channel scales ``(out,)``."""
    with warnings.catch_warnings():  # torch 2.13 warns quantized tensors are deprecated: the fallback exists
        warnings.simplefilter("ignore")
        zero = torch.zeros(len(weight_scale), dtype=torch.int64)
        qweight = torch._make_per_channel_quantized_tensor(weight_q, weight_scale.double(), zero, 0)
        return torch.ops.quantized.linear_prepack(qweight, bias)


@functools.cache
def int_mm_is_exact() -> bool:
    """Whether ``torch._int_mm`` on the CPU returns exact products: all-127 rows, whose pairs
    of products overflow int16, checked against int32 arithmetic."""
    a = torch.full((4, 64), 127, dtype=torch.int8)
    return torch.equal(torch._int_mm(a, a.t().contiguous()), a.int() @ a.int().t())


class Int8Linear(torch.nn.Module):
    """``nn.Linear`` for inference in int8 (see the module doc). Input and output float32."""

    def __init__(self, linear: torch.nn.Linear, *, fbgemm: bool | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = _quantize_rows(linear.weight.detach().float())  # a weight row is an output channel
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.packed = None
        if fbgemm_available() if fbgemm is None else fbgemm:
            self.packed = _fbgemm_packed(q, scale.flatten(), bias)
            return
        self.register_buffer("weight_q", q.t().contiguous(), persistent=False)  # (in, out) for _int_mm
        self.register_buffer("weight_scale", scale.reshape(1, -1), persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).float()
        if self.packed is not None:
            # reduce_range: 7-bit inputs, as quantize_dynamic does on x86. Without VNNI, fbgemm sums
            # pairs of u8 x s8 products in int16 (vpmaddubsw), which saturates on 8-bit inputs
            out = torch.ops.quantized.linear_dynamic(rows, self.packed, True)
        else:
            q, scale = _quantize_rows(rows)
            out = torch.mul(torch._int_mm(q, self.weight_q), scale)  # int32 -> float32 in the same pass
            if self.bias is None:
                out = out.mul_(self.weight_scale)
            else:
                out = torch.addcmul(self.bias, out, self.weight_scale, out=out)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        kernel = "fbgemm" if self.packed is not None else "_int_mm"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 ({kernel})"


def quantize_linears(model, *, fbgemm: bool | None = None) -> int:
    """Replace, in place, every float32 ``nn.Linear`` of ``model`` that :func:`fits` by an
    :class:`Int8Linear` (its weight quantized from the model's current weights; ``fbgemm``: which
    kernel, None = fbgemm where available). Returns how many were replaced; the others stay float32."""
    if not (fbgemm_available() if fbgemm is None else fbgemm) and not int_mm_is_exact():
        raise SpotreviewError(
            "precision int8 needs fbgemm (x86 builds of torch) or a CPU with VNNI, and this torch/CPU has "
            "neither; use --precision fp32"
        )
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.float32 and fits(child)
    ]
    for parent, name, child in found:
        setattr(parent, name, Int8Linear(child, fbgemm=fbgemm))
    return len(found)
