"""The forward pass: images -> embeddings and class probabilities, for one model.

One forward pass per image and snapshot gives both:

* the **embedding**: the CLS vector ``last_hidden_state[:, 0]`` of the base model (after its
  final layer norm: what a ViT classification head reads), captured with a forward hook on
  the base model while the full model runs. Models whose last hidden state is not
  ``(batch, tokens, dim)`` (CNNs) give their ``pooler_output`` flattened instead. Models
  without a CLS token (Swin, ...) still give token 0; use a ViT-like model for CLS semantics.
* the **probabilities**: softmax of the classification logits, when the snapshot has a
  classification head (config architecture ``*ForImageClassification``).

Images are preprocessed once into one tensor (:func:`preprocess`) and reused for every
snapshot. Both ways in use this module: :func:`spotreview.embedding.embed.embed` (post hoc, from
checkpoints) and :class:`spotreview.training.recorder.EmbeddingRecorder` (while training).
Outputs are always float32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from spotreview.defaults import EMBED_BATCH_SIZE
from spotreview.errors import DataError
from spotreview.rundir.evalset import to_rgb
from spotreview.rundir.run import user_cache_dir

PREPROCESS_BATCH_SIZE = 256  # images converted at once: bounds the float32 working copy (~150 MB at 224 px)


def preprocess(
    images: Sequence,
    processor,
    *,
    dtype: torch.dtype = torch.float32,
    batch_size: int = PREPROCESS_BATCH_SIZE,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> torch.Tensor:
    """Run ``processor`` once over ``images`` (PIL, any mode) -> ``(n, 3, H, W)`` tensor of ``dtype``
    on ``device``. Processors that only resize to a fixed size, rescale and normalise (ViT-like)
    are applied as batched tensor operations on ``device`` (:mod:`spotreview.embedding.pixels`)."""
    from tqdm.auto import tqdm

    from spotreview.embedding import pixels as fast

    n = len(images)
    plan = fast.plan(processor)
    out = None
    for start in tqdm(range(0, n, batch_size), desc="preprocess", unit="batch", disable=quiet, leave=False):
        batch = [to_rgb(im) for im in images[start : start + batch_size]]
        if plan is not None:
            if out is None:
                out = torch.empty((n, 3, *plan["size"]), dtype=dtype, device=device)
            fast.apply(batch, plan, out[start : start + len(batch)])
            continue
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        if out is None:  # allocate once: no second copy of the whole set at the end
            out = torch.empty((n, *pixels.shape[1:]), dtype=dtype, device=device)
        out[start : start + len(batch)] = pixels
    if out is None:
        raise DataError("there are no evaluation images to embed")
    return out


def _cls_vector(output) -> torch.Tensor:
    """``(batch, dim)`` from a base model's output (see the module doc)."""
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    if hidden.ndim == 3:
        return hidden[:, 0]
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:  # a feature map without a pooler: average over the spatial positions
        pooled = hidden.flatten(2).mean(-1)
    return pooled.flatten(1)


def forward(
    model,
    pixels: torch.Tensor,
    *,
    device: torch.device,
    autocast: torch.dtype | None = None,
    batch_size: int = EMBED_BATCH_SIZE,
    quiet: bool = False,
    desc: str = "embed",
    fixed_batch: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings ``(n, dim)`` float32 and probabilities ``(n, n_classes)`` float32 (or None).

    ``model`` is a transformers image model already on ``device`` and in eval mode (or its
    :func:`compiled` form); ``pixels`` is ``(n, 3, H, W)`` from :func:`preprocess`, on any
    device. ``fixed_batch``: pad the last batch to the others' size (a compiled model then
    needs one graph, not a second compile for the remainder).
    """
    from tqdm.auto import tqdm

    base = getattr(model, "base_model", model)
    weights = next(model.parameters()).dtype
    captured = {}
    handle = base.register_forward_hook(lambda module, args, output: captured.__setitem__("out", output))
    n = len(pixels)
    batch_size = max(1, min(batch_size, n))
    emb = probs = None  # filled in place on the device: no per-batch allocation or device sync
    try:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None),
        ):
            for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=quiet, leave=False):
                x = pixels[start : start + batch_size].to(device, non_blocking=True)
                rows = len(x)
                if fixed_batch and rows < batch_size:
                    x = torch.cat([x, x.new_zeros((batch_size - rows, *x.shape[1:]))])
                if autocast is None and x.dtype != weights:
                    x = x.to(weights)
                out = model(pixel_values=x)
                vectors = _cls_vector(captured.pop("out"))[:rows]
                if emb is None:
                    emb = torch.empty((n, vectors.shape[1]), dtype=torch.float32, device=device)
                emb[start : start + rows] = vectors
                logits = getattr(out, "logits", None) if base is not model else None
                if logits is not None:
                    if probs is None:
                        probs = torch.empty((n, logits.shape[1]), dtype=torch.float32, device=device)
                    probs[start : start + rows] = torch.softmax(logits[:rows].float(), dim=-1)
    finally:
        handle.remove()
    return emb.cpu().numpy(), (None if probs is None else probs.cpu().numpy())


def _matmul_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Inference attention as ``softmax(q k^T) v`` in two batched matmuls (transformers'
    attention-interface signature). At ViT sequence lengths on a CPU in bf16 this is faster
    than torch's fused CPU kernel (``scaled_dot_product_attention``), which splits every head
    into small blocks (benchmarks/RESULTS.md); the softmax still accumulates in float32. What
    it does not cover (training, causal or boolean masks, fewer key than query heads) goes to
    that kernel."""
    causal = kwargs.get("is_causal") or getattr(module, "is_causal", False)
    boolean_mask = attention_mask is not None and attention_mask.dtype == torch.bool  # True = attend: not additive
    if module.training or causal or boolean_mask or key.shape[1] != query.shape[1]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    scores = torch.matmul(query * (query.shape[-1] ** -0.5 if scaling is None else scaling), key.transpose(2, 3))
    if attention_mask is not None:
        scores = scores + attention_mask
    return torch.matmul(scores.softmax(-1), value).transpose(1, 2).contiguous(), None


def use_matmul_attention(model) -> bool:
    """Switch ``model`` (for inference) to :func:`_matmul_attention` where that is faster: bf16
    weights on a CPU (in float32 torch's fused CPU kernel wins; GPUs keep their flash kernels),
    in a model that uses transformers' attention interface (ViT, DeiT, BEiT, ...). It stays
    faster when compiled: inductor leaves this form alone, whereas it turns transformers' own
    "eager" attention back into the fused kernel. Returns whether it did."""
    from transformers import AttentionInterface

    weights = next(model.parameters(), None)
    if weights is None or weights.device.type != "cpu" or weights.dtype != torch.bfloat16:
        return False
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False  # flash-attention kernels or another choice made for the model: kept
    if not model._can_set_attn_implementation():
        return False  # no attention interface to go through
    AttentionInterface.register("spotreview_matmul", _matmul_attention)
    model.set_attn_implementation("spotreview_matmul")
    return True


class _OneDNNLinear(torch.nn.Module):
    """``nn.Linear`` for inference through oneDNN with the weight packed once (see
    :func:`use_onednn_linears`)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer(
            "packed", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach()), persistent=False
        )
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach(), requires_grad=False)

    def forward(self, x):
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def use_onednn_linears(model) -> int:
    """Replace every ``nn.Linear`` of ``model`` (for inference, bf16 weights on a CPU) by oneDNN's
    linear with its weight packed once, ``torch.ops.mkldnn._linear_pointwise``: what inductor's
    ``freezing`` compiles linears to. The bias is added inside the GEMM instead of being copied
    into every output first (``addmm``), and the weight is not re-laid-out per call
    (benchmarks/RESULTS.md). The op is torch's private API, so where it is missing, or where the first replacement does
    not reproduce ``nn.Linear`` on a test input, nothing is replaced. Returns how many were."""
    weights = next(model.parameters(), None)
    if weights is None or weights.device.type != "cpu" or weights.dtype != torch.bfloat16:
        return 0
    if not (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    ):
        return 0
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16
    ]
    if not found:
        return 0
    try:
        linear = found[0][2]
        x = torch.randn(3, 5, linear.in_features, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
        with torch.inference_mode():
            want, got = linear(x).float(), _OneDNNLinear(linear)(x).float()
        if got.shape != want.shape or not torch.allclose(got, want, rtol=2e-2, atol=2e-2 * float(want.abs().max())):
            return 0
        for parent, name, child in found:
            setattr(parent, name, _OneDNNLinear(child))
    except RuntimeError:  # the private op changed or rejects this model: nn.Linear stays
        return 0
    return len(found)


def prepare_for_inference(model, *, compiling: bool = False, int8: bool = False) -> None:
    """What :func:`embed` does to a loaded model (on its device, in its dtype) before its forward:
    on a CPU in bf16, :func:`use_matmul_attention` and, unless the model is to be compiled
    (inductor compiles linears its own way), :func:`use_onednn_linears`; with ``int8``, its
    linear layers in int8 (:func:`spotreview.embedding.quantize.quantize_linears`)."""
    if int8:
        from spotreview.embedding.quantize import quantize_linears

        quantize_linears(model)
    use_matmul_attention(model)
    if not compiling:
        use_onednn_linears(model)


def compiled(model):
    """``torch.compile(model)`` for one batch shape. Its cache (inductor's) goes to
    ``$XDG_CACHE_HOME/spotreview/torch-compile`` unless ``TORCHINDUCTOR_CACHE_DIR`` says
    otherwise, so it outlives /tmp: later runs load the compiled graph instead of compiling it
    again. Every snapshot's model of the same architecture reuses the graph compiled for the
    first.

    A model on transformers' "sdpa" attention is first switched to the same function under a
    name of ours. Traced by torch.compile, transformers gives "sdpa" an all-true boolean
    attention mask where eager passes none, and with a mask SDPA leaves its fused kernels for
    its float32 math path (on CUDA the compiled forward ran slower than eager:
    benchmarks/RESULTS.md). For a name it has no mask function for, transformers builds no
    mask; the images have no padding, so there is nothing to mask."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) == "sdpa" and model._can_set_attn_implementation():
        AttentionInterface.register("spotreview_sdpa", sdpa_attention_forward)
        model.set_attn_implementation("spotreview_sdpa")

    # importing torch already fills in inductor's default (/tmp); a user's own choice stays
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(user_cache_dir() / "torch-compile")
    return torch.compile(model, dynamic=False)
