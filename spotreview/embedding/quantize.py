"""int8 inference for a model's linear layers (``--precision int8``).

Every ``nn.Linear`` whose shape fits becomes an :class:`Int8Linear`: its weight quantized once
(symmetric int8, one scale per output channel), its input quantized on the fly (symmetric int8,
one scale per row, i.e. per token), the product by ``torch._int_mm`` (int8 x int8 -> int32,
exact), then rescaled to float32 and the bias added. Everything else (layer norms, GELU,
softmax, the attention matmuls) stays float32, and so do the outputs.

Why this and not ``torch.ao.quantization.quantize_dynamic``: one scale per row instead of one per
activation tensor, as fast or faster, and quantize_dynamic is deprecated (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import torch

# int8's symmetric range: -127..127 (not -128), so a value and its negation quantize alike
_QMAX = 127.0
# torch._int_mm on CUDA needs more than 16 rows and both matrix dimensions multiples of 8; on a
# CPU (oneDNN) it takes any shape, but a layer that fits nowhere stays float32 everywhere, so a
# model quantizes alike on every device.
_MULTIPLE = 8
_CUDA_MIN_ROWS = 17


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


class Int8Linear(torch.nn.Module):
    """``nn.Linear`` for inference in int8 (see the module doc). Input and output float32."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = _quantize_rows(linear.weight.detach().float())  # a weight row is an output channel
        # (in, out) for _int_mm, stored transposed once; contiguous: oneDNN's fastest layout here
        self.register_buffer("weight_q", q.t().contiguous(), persistent=False)
        self.register_buffer("weight_scale", scale.reshape(1, -1), persistent=False)
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        if rows.device.type == "cuda" and rows.shape[0] < _CUDA_MIN_ROWS:
            return self._float_forward(rows).reshape(*shape[:-1], self.out_features)
        q, scale = _quantize_rows(rows)
        out = torch.mul(torch._int_mm(q, self.weight_q), scale)  # int32 -> float32 in the same pass
        if self.bias is None:
            out = out.mul_(self.weight_scale)
        else:
            out = torch.addcmul(self.bias, out, self.weight_scale, out=out)
        return out.reshape(*shape[:-1], self.out_features)

    def _float_forward(self, rows: torch.Tensor) -> torch.Tensor:
        """The same layer from its dequantized weight (too few rows for ``_int_mm`` on CUDA)."""
        weight = self.weight_q.float() * self.weight_scale
        out = rows.float() @ weight
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linears(model) -> int:
    """Replace, in place, every float32 ``nn.Linear`` of ``model`` that :func:`fits` by an
    :class:`Int8Linear` (its weight quantized from the model's current weights). Returns how many
    were replaced; the others stay float32."""
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.float32 and fits(child)
    ]
    for parent, name, child in found:
        setattr(parent, name, Int8Linear(child))
    return len(found)
