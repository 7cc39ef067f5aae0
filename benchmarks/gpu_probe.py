"""Two probes for the GPU run (``benchmarks/gpu.sh``), printed as text: where the CUDA
neighbour search spends its time (torch.profiler, one 50k x 768 search), and the 2-D PCA
of 50k x 768 as analyze runs it (numpy on the host) against the same computation with the
covariance GEMM on the GPU (a candidate, not shipped). Not a benchmark with a baseline."""

from __future__ import annotations

import sys
import time

import numpy as np


def main(n: int = 50_000, device: str = "cuda") -> None:
    import torch

    from benchmarks.bench_analyze import _embeddings
    from spotreview.analysis import _pca_2d
    from spotreview.neighbors import cleanlab_neighbors

    dev = torch.device(device)
    x, _ = _embeddings(n, seed=0)
    cleanlab_neighbors(x[:4096], 10, device=device)  # CUDA context, kernels
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        cleanlab_neighbors(x, 10, device=device)
        wall = time.perf_counter() - start
    print(f"neighbour search {n}x{x.shape[1]} under the profiler: {wall:.3f} s wall")
    print(prof.key_averages().table(sort_by="cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total", row_limit=12, max_name_column_width=50))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8, max_name_column_width=50))

    def pca_on_device(x: np.ndarray) -> np.ndarray:
        from scipy.linalg import eigh

        xt = torch.from_numpy(x).to(dev, torch.float64)
        mean = xt.mean(0)
        xt -= mean
        cov = (xt.T @ xt / (len(x) - 1)).cpu().numpy()
        _, vectors = eigh(cov, subset_by_index=[x.shape[1] - 2, x.shape[1] - 1])
        components = vectors[:, ::-1].T.copy()
        signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
        return (xt @ torch.from_numpy(components * signs[:, None]).to(dev).T).cpu().numpy()

    for name, fn in (("numpy (as shipped)", _pca_2d), ("covariance on the GPU (candidate)", pca_on_device)):
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


if __name__ == "__main__":
    main(*(int(sys.argv[1]),) if len(sys.argv) > 1 else (), *sys.argv[2:3])
