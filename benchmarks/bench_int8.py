"""int8 embedding: the ViT-base forward (images/s, CLS vectors) in fp32, with spotreview's int8
linear layers (:mod:`spotreview.embedding.quantize`, both kernels) and with torch's deprecated
``quantize_dynamic``, in one process, the four interleaved (best of ``reps`` each), plus the
minimum per-image cosine of each int8 way against fp32.

A CPU class is reproduced by pinning the ISA before the process starts:
``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` (AVX-512 with VNNI, no bf16) or
``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2`` (AVX2
only; quantize_dynamic runs on fbgemm, which reads its own variable). Random init: speed does
not depend on the weights.

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python -m benchmarks int8
"""

from __future__ import annotations

import copy
import os
import time
import warnings


def _models(image_size: int):
    import torch
    from transformers import ViTConfig, ViTModel

    from spotreview.embedding.quantize import int_mm_is_exact, quantize_linears

    torch.manual_seed(0)
    fp32 = ViTModel(ViTConfig(image_size=image_size), add_pooling_layer=False).eval()
    int8 = copy.deepcopy(fp32)
    quantize_linears(int8)  # fbgemm, where torch has it: the kernel embed uses
    per_row = copy.deepcopy(fp32)
    if int_mm_is_exact():  # not on AVX2 without VNNI: refused there
        quantize_linears(per_row, fbgemm=False)  # the fallback: per-row scales, torch._int_mm
    with warnings.catch_warnings():  # its deprecation warning: the reason it is not the one used
        warnings.simplefilter("ignore")
        dynamic = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)
    models = {"fp32": fp32, "int8 fbgemm (embed)": int8, "int8 _int_mm per row": per_row, "quantize_dynamic": dynamic}
    if not int_mm_is_exact():
        del models["int8 _int_mm per row"]
    return models


def run(quick: bool = False, images: int | None = None, reps: int = 3) -> list[dict]:
    import torch

    batch = images or (4 if quick else 16)
    models = _models(224)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    best = dict.fromkeys(models, float("inf"))
    cls = {}
    with torch.inference_mode():
        for name, model in models.items():  # warm-up, and the vectors compared
            cls[name] = model(pixel_values=x).last_hidden_state[:, 0]
        for _ in range(reps):
            for name, model in models.items():
                started = time.perf_counter()
                model(pixel_values=x)
                best[name] = min(best[name], time.perf_counter() - started)
    pin = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    rows = []
    for name in models:
        cos = torch.nn.functional.cosine_similarity(cls[name], cls["fp32"]).min().item()
        rows.append(
            {
                "benchmark": "int8",
                "measure": f"ViT-base forward, {name}, ISA {pin}",
                "value": batch / best[name],
                "unit": "img/s",
                "baseline": batch / best["fp32"],
                "ratio": best["fp32"] / best[name],
                "note": f"batch {batch}, best of {reps}; min cosine to fp32 {cos:.4f}",
            }
        )
    return rows
