"""Probes for the GPU run (``benchmarks/gpu.sh``), printed as text: where the CUDA neighbour
search spends its time (torch.profiler, one 50k x 768 search); the 2-D PCA of 50k x 768 as
analyze runs it (numpy on the host) against the same computation with the covariance GEMM on
the GPU (a candidate, not shipped); and where one ViT-B/16 bf16 batch spends its GPU time,
eager and through ``spotreview.embedding.forward.compiled``. Not benchmarks with a baseline."""

from __future__ import annotations

import sys
import time

import numpy as np


def main(n: int = 50_000, device: str = "cuda") -> None:
    import torch

    from benchmarks.bench_analyze import _embeddings
    from spotreview.analysis.outliers import cleanlab_neighbors
    from spotreview.analysis.projection import pca_2d

    dev = torch.device(device)
    x, _ = _embeddings(n, seed=0)
    cleanlab_neighbors(x[:4096], 10, device=device)  # CUDA context, kernels
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        cleanlab_neighbors(x, 10, device=device)
        wall = time.perf_counter() - start
    print(f"neighbour search {n}x{x.shape[1]} under the profiler: {wall:.3f} s wall")
    key = "cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=50))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8, max_name_column_width=50))

    def pca_on_device(x: np.ndarray) -> np.ndarray:
        from scipy.linalg import eigh

        xt = torch.from_numpy(x).to(dev).double()  # widened on the device (see analysis.outliers.cosine_knn)
        mean = xt.mean(0)
        xt -= mean
        cov = (xt.T @ xt / (len(x) - 1)).cpu().numpy()
        _, vectors = eigh(cov, subset_by_index=[x.shape[1] - 2, x.shape[1] - 1])
        components = vectors[:, ::-1].T.copy()
        signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
        return (xt @ torch.from_numpy(components * signs[:, None]).to(dev).T).cpu().numpy()

    for name, fn in (("numpy (as shipped)", pca_2d), ("covariance on the GPU (candidate)", pca_on_device)):
        fn(x)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            out = fn(x)
            times.append(time.perf_counter() - start)
        print(f"PCA {n}x{x.shape[1]}, {name}: best {min(times):.3f} s of 3; |coords| {np.abs(out).max():.4f}")
    import hashlib

    data = x.tobytes()
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    print(f"sha256 of {len(data) / 1e6:.0f} MB: {time.perf_counter() - start:.3f} s")


def vit_kernels(device: str = "cuda", batch: int = 256) -> None:
    """ms per ViT-B/16 bf16 batch (CUDA events, mean of 10) and the top GPU kernels: eager,
    eager with cuDNN's autotuner (the patch-embedding convolution), compiled as ``spotreview
    embed --compile on`` compiles, and compiled with SDPA limited to its fused kernels (flash,
    memory-efficient) while the graph is traced. A variant that cannot run is reported."""
    import contextlib

    import torch
    import transformers
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import ViTConfig, ViTModel

    from spotreview.embedding.forward import compiled

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    dev = torch.device(device)
    model = ViTModel(ViTConfig(image_size=224, patch_size=16), add_pooling_layer=False).to(dev, torch.bfloat16).eval()
    x = torch.randn(batch, 3, 224, 224, device=dev, dtype=torch.bfloat16)
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    variants = (
        ("eager", lambda: model, contextlib.nullcontext),
        ("eager, cudnn.benchmark", lambda: model, contextlib.nullcontext),
        ("compiled", lambda: compiled(model), contextlib.nullcontext),
        ("compiled, SDPA flash/efficient only", lambda: compiled(model), lambda: sdpa_kernel(fused)),
    )
    for name, make, context in variants:
        label = f"ViT-B/16 bf16 batch {batch}, {name}"
        torch.backends.cudnn.benchmark = "cudnn.benchmark" in name
        torch._dynamo.reset()
        try:
            _time_and_profile(label, make(), x, context)
        except Exception as e:
            print(f"{label}: FAILED: {str(e).strip().splitlines()[0][:300]}")


def _time_and_profile(label: str, model, x, context) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), context():
        for _ in range(3):
            model(pixel_values=x)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            model(pixel_values=x)
        end.record()
        torch.cuda.synchronize()
        print(f"{label}: {start.elapsed_time(end) / 10:.2f} ms per batch")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(pixel_values=x)
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if x.device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=8, max_name_column_width=60))


if __name__ == "__main__":
    args = sys.argv[1:]  # [N [DEVICE]] or vit [DEVICE]
    if args[:1] == ["vit"]:
        vit_kernels(*args[1:2])
    else:
        main(int(args[0]) if args else 50_000, *args[1:2])
