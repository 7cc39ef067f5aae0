"""Embed benchmark: `spotreview embed` against the notebook way, and its forward pass against
the machine's matmul-bound limit.

The notebook way (what the seed article's code does): for every snapshot, load the model, run
the image processor on PIL images batch by batch, fp32, batch 24, and keep the CLS vector.
spotreview preprocesses once, reuses the tensor for every snapshot, runs bf16 weights where the
hardware has bf16 and, on a CPU, the matmul attention. Both embed the same images from the
same ViT-base-sized checkpoints (random init: speed does not depend on the weights), as whole
processes: start-up, imports and model loading count.

The limit: the steady-state forward (images/s x FLOPs per image, counted by torch's
FlopCounterMode; no loading, preprocessing or writing) against the best throughput of the
model's largest GEMM measured in the same run at the same precision.

With ``--images N`` (or ``--device cuda``) it measures throughput only, no baseline, on
in-memory images: ``python -m benchmarks embed --device cuda --images 4096`` gives ViT-B/16
img/s including preprocessing, over 2 snapshots. That path imports torch and transformers
only (no datasets, cleanlab or Spotlight), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

from .bench_postprocess import _wall
from .embed_notebook import NOTEBOOK, _image_folder, _vit_base_checkpoints
from .paired import Paired


def gemm_flops_per_s(dtype, m: int, k: int = 768, n: int = 3072, trials: int = 5, device="cpu") -> float:
    """Best measured throughput, FLOP/s, of the GEMM that dominates ViT-base: the MLP's
    (tokens in a batch x 768) @ (768 x 3072). Best of ``trials``: a limit, not an average.
    The output is allocated once: a fresh 39 MB output per call costs page faults (glibc maps
    every block over 32 MB anew), which would read as a lower GEMM limit.
    On a CPU in bf16 the limit is the faster of ``torch.mm`` and oneDNN's linear with a packed
    weight (what ``embed`` runs its linears on there, see ``use_onednn_linears``), so the
    forward's share is measured against the best GEMM the process has."""
    import torch

    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    out = torch.mm(a, b)
    gemms = [lambda: torch.mm(a, b, out=out)]
    on_cpu = torch.device(device).type == "cpu"
    if on_cpu and dtype == torch.bfloat16 and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        packed = torch.ops.mkldnn._reorder_linear_weight(b.T.contiguous())
        gemms.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
    repeat = 1 if on_cpu else 20  # a GPU GEMM this size takes ~0.1 ms
    best = 0.0
    for gemm in gemms:
        gemm()
        for _ in range(trials):
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeat):
                gemm()
            _sync(device)
            best = max(best, 2 * m * k * n * repeat / (time.perf_counter() - start))
    return best


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def flops_per_image(config) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ViTModel

    model = ViTModel(config).eval()
    x = torch.zeros(1, 3, config.image_size, config.image_size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(pixel_values=x)
    return float(counter.get_total_flops())


def throughput(
    device: str,
    n_images: int,
    n_snapshots: int = 2,
    batch_size: int | None = None,
    config: dict | None = None,
    torch_compile: bool = False,
) -> list[dict]:
    """img/s of preprocess once + forward per snapshot (ViT-B/16, 224 px, auto precision) on
    ``n_images`` in-memory 32x32 images; models are built before the clock starts.
    ``config``: other ViTConfig sizes (the tests' tiny model). ``torch_compile``: then also the
    steady-state forward of the same models through :func:`spotreview.embedding.forward.compiled`
    (as ``spotreview embed --compile`` runs them), after a timed first (compiling) batch."""
    import torch
    from PIL import Image
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging

    from spotreview.defaults import EMBED_BATCH_SIZE
    from spotreview.embedding.forward import forward, prepare_for_inference, preprocess
    from spotreview.embedding.models import resolve_device, resolve_precision
    from spotreview.embedding.pixels import plan
    from spotreview.util.process import keep_freed_memory

    logging.set_verbosity_error()
    keep_freed_memory()  # as the `spotreview` process does
    dev = resolve_device(device)
    dtype = resolve_precision("auto", dev) or torch.float32
    batch = batch_size or (256 if dev.type == "cuda" else EMBED_BATCH_SIZE)
    config = ViTConfig(**{"image_size": 224, "patch_size": 16, "num_labels": 10, **(config or {})})
    size = config.image_size
    processor = ViTImageProcessor(size={"height": size, "width": size})
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n_images)]

    def built(step: int, compiling: bool = False):
        torch.manual_seed(step)
        model = ViTForImageClassification(config).to(dev, dtype=dtype).eval()
        prepare_for_inference(model, compiling=compiling)  # as spotreview.embed does
        return model

    models = [built(step) for step in range(n_snapshots)]
    forward(
        models[0],
        preprocess(images[:batch], processor, dtype=dtype, device=dev, quiet=True),
        device=dev,
        batch_size=batch,
        quiet=True,
    )  # warm-up: kernels, allocator, threads
    _sync(dev)
    start = time.perf_counter()
    pixels = preprocess(images, processor, dtype=dtype, device=dev, quiet=True)
    _sync(dev)
    preprocessed = time.perf_counter()
    for model in models:
        forward(model, pixels, device=dev, batch_size=batch, quiet=True)  # ends with a copy to the host
    end = time.perf_counter()
    total = n_images * n_snapshots
    name = f"{dev.type} {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else ''}".strip()
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    tokens = (size // config.patch_size) ** 2 + 1
    limit = gemm_flops_per_s(dtype, m=batch * tokens, k=config.hidden_size, n=config.intermediate_size, device=dev)
    per_image = flops_per_image(config)
    achieved = total / (end - preprocessed) * per_image
    row = dict(benchmark="embed", unit="img/s")
    rows = [
        dict(
            row,
            measure=f"ViT-B/16 {precision} img/s incl. preprocessing, {n_images} images x {n_snapshots} "
            f"snapshots, batch {batch} ({name})",
            value=total / (end - start),
            target=">= 4000 (GPU)",
            met=total / (end - start) >= 4000 if dev.type == "cuda" else None,
            note=f"preprocess once {preprocessed - start:.2f} s ({'tensor ops' if plan(processor) else 'processor'}, "
            f"{type(processor).__name__}), forward {end - preprocessed:.2f} s; model building not timed",
        ),
        dict(row, measure=f"ViT-B/16 {precision} forward img/s, steady state", value=total / (end - preprocessed)),
        dict(
            row,
            measure=f"share of {precision} GEMM limit",
            value=achieved / limit,
            unit="of limit",
            target=">= 0.75",
            met=achieved / limit >= 0.75,
            note=f"achieved {achieved / 1e12:.2f} TFLOP/s vs GEMM {limit / 1e12:.2f} TFLOP/s "
            f"({batch}x{tokens} @ {config.hidden_size}x{config.intermediate_size})",
        ),
    ]
    if torch_compile:
        from spotreview.embedding.forward import compiled

        fast = [compiled(built(step, compiling=True)) for step in range(n_snapshots)]
        _sync(dev)
        start = time.perf_counter()
        forward(fast[0], pixels[:batch], device=dev, batch_size=batch, quiet=True, fixed_batch=True)
        compile_s = time.perf_counter() - start
        for model in fast[1:]:  # the other snapshots' models reuse the first one's graph
            forward(model, pixels[:batch], device=dev, batch_size=batch, quiet=True, fixed_batch=True)
        _sync(dev)
        start = time.perf_counter()
        for model in fast:
            forward(model, pixels, device=dev, batch_size=batch, quiet=True, fixed_batch=True)
        compiled_rate = total / (time.perf_counter() - start)
        share = compiled_rate * per_image / limit
        rows += [
            dict(
                row,
                measure=f"ViT-B/16 {precision} forward img/s, steady state, torch.compile",
                value=compiled_rate,
                baseline=total / (end - preprocessed),
                ratio=compiled_rate / (total / (end - preprocessed)),
                note=f"first compiled batch {compile_s:.1f} s (compile, cache as found); baseline: eager",
            ),
            dict(
                row,
                measure=f"share of {precision} GEMM limit, torch.compile",
                value=share,
                unit="of limit",
                target=">= 0.75",
                met=share >= 0.75,
            ),
        ]
    return rows


def forward_timer(checkpoint: Path, folder: Path, dtype, torch_compile: bool, batch_size: int):
    """A function that times one forward of every image in ``folder`` through ``checkpoint``,
    loaded as `spotreview embed` loads it (``dtype`` weights, prepared as it prepares them,
    compiled or not), warmed up: the steady state, without loading, preprocessing or writing."""
    import torch
    from PIL import Image

    from spotreview.embedding.forward import compiled, forward, prepare_for_inference, preprocess
    from spotreview.embedding.models import load_checkpoint, load_processor
    from spotreview.rundir.run import Run
    from spotreview.util.process import keep_freed_memory

    keep_freed_memory()  # as the `spotreview` process does
    cpu = torch.device("cpu")
    images = [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))]
    pixels = preprocess(images, load_processor(Run(checkpoint.parent), checkpoint, None), dtype=dtype, quiet=True)
    model = load_checkpoint(checkpoint).to(dtype=dtype)
    prepare_for_inference(model, compiling=torch_compile)
    model = compiled(model) if torch_compile else model
    forward(model, pixels[:batch_size], device=cpu, batch_size=batch_size, quiet=True, fixed_batch=torch_compile)

    def timed() -> float:
        start = time.perf_counter()
        forward(model, pixels, device=cpu, batch_size=batch_size, quiet=True, fixed_batch=torch_compile)
        return time.perf_counter() - start

    return timed


def run(
    quick: bool = False, device: str = "auto", images: int | None = None, torch_compile: bool = False, **_
) -> list[dict]:
    import torch

    if images or device not in ("auto", "cpu") or (device == "auto" and torch.cuda.is_available()):
        return throughput(device, images or (64 if quick else 4096), torch_compile=torch_compile)

    from spotreview.defaults import EMBED_BATCH_SIZE as BATCH
    from spotreview.embedding.models import resolve_precision

    n_images, n_snapshots = (48, 2) if quick else (512, 2)  # the size: >= 512 images x 2
    image_size = 224
    cli = [sys.executable, "-m", "spotreview", "embed"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir = tmp / "run"
        config, _ = _vit_base_checkpoints(run_dir, n_snapshots, image_size)
        folder = _image_folder(tmp / "images", n_images)

        def ours(way: str) -> float:
            shutil.rmtree(run_dir / "embeddings", ignore_errors=True)  # embed every snapshot again
            flags = ["--compile"] if way == "compiled" else []
            return _wall(cli + [str(run_dir), "--images", str(folder), *flags, "-q"])

        first_compiled_s = ours("compiled")  # fills the compile cache (what a user's first compiled run pays)
        # Whole processes (start-up, imports and model loading count) in rounds of the three
        # ways, alternating A B C, C B A, ... because a shared machine's speed drifts within
        # minutes; each way is compared with the notebook run of its own round (a pair).
        seconds = {"notebook": [], "eager": [], "compiled": []}
        for i in range(2 if quick else 3):
            for way in ("notebook", "eager", "compiled")[:: 1 if i % 2 == 0 else -1]:
                if way == "notebook":
                    seconds[way].append(_wall([sys.executable, "-c", NOTEBOOK, str(run_dir), str(folder)]))
                else:
                    seconds[way].append(ours(way))

        # Steady state: the forward passes alone, eager and compiled alternating (A B B A), each
        # next to a measurement of the limit GEMM (best of all: a limit, not an average).
        dtype = torch.bfloat16 if resolve_precision("auto", torch.device("cpu")) else torch.float32
        checkpoint = run_dir / "checkpoint-0"
        timers = {
            way: forward_timer(checkpoint, folder, dtype, way == "compiled", BATCH) for way in ("eager", "compiled")
        }
        forward_s = {"eager": 0.0, "compiled": 0.0}
        tokens = (image_size // config.patch_size) ** 2 + 1
        limit = 0.0
        for way in ("eager", "compiled", "compiled", "eager"):
            forward_s[way] += timers[way]()
            limit = max(limit, gemm_flops_per_s(dtype, m=BATCH * tokens))

    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    flops = flops_per_image(config)
    total = n_images * n_snapshots
    for way, label in (("eager", "default, not compiled"), ("compiled", "--compile, warm cache")):
        pairs = Paired(tuple(seconds[way]), tuple(seconds["notebook"]))
        rows.append(
            dict(
                benchmark="embed",
                measure=f"`spotreview embed`, {n_images} images x {n_snapshots} ViT-base snapshots "
                f"({precision}, {label}), whole process",
                value=total / pairs.ours_median,
                unit="img/s",
                baseline=total / pairs.baseline_median,
                ratio=pairs.ratio,
                target=">= 3x",
                met=pairs.ratio >= 3,
                note=f"baseline: the notebook way (processor per snapshot, fp32, batch 24); {pairs.summary()}",
            )
        )
        achieved = 2 * n_images / forward_s[way] * flops
        rows.append(
            dict(
                benchmark="embed",
                measure=f"steady-state forward, share of the {precision} GEMM limit "
                f"({flops / 1e9:.1f} GFLOP/img, batch {BATCH}, {label})",
                value=achieved / limit,
                unit="of limit",
                target=">= 0.75",
                met=achieved / limit >= 0.75,
                note=f"{2 * n_images / forward_s[way]:.1f} img/s, {achieved / 1e9:.0f} GFLOP/s "
                f"vs GEMM {limit / 1e9:.0f} GFLOP/s ({BATCH * tokens} x 768 @ 768 x 3072); whole process: "
                f"{total / pairs.ours_median * flops / limit:.2f} of the limit",
            )
        )
    rows.append(
        dict(
            benchmark="embed",
            measure="first compiled `spotreview embed` (compile cache as found)",
            value=first_compiled_s,
            unit="s",
            baseline=median(seconds["compiled"]),
            note="baseline: the same with a warm cache",
        )
    )
    return rows
